"""The console's group check inside a user namespace (the shipped unit's PrivateUsers=yes), where
the console group is unmapped: the kernel's permission check on the socket is the gate."""

from __future__ import annotations

from firmware_app.console.server import gid_mapped

# /proc/self/gid_map as systemd writes it for PrivateUsers=yes: root and the service's own group.
PRIVATE_USERS = "         0          0          1\n       995        995          1\n"
NO_NAMESPACE = "         0          0 4294967295\n"


def test_every_gid_is_mapped_without_a_user_namespace():
    assert gid_mapped(996, NO_NAMESPACE)
    assert gid_mapped(0, NO_NAMESPACE)


def test_only_root_and_the_service_group_are_mapped_under_private_users():
    assert gid_mapped(995, PRIVATE_USERS)
    assert gid_mapped(0, PRIVATE_USERS)
    assert not gid_mapped(996, PRIVATE_USERS)  # the console group
    assert not gid_mapped(65534, PRIVATE_USERS)


def test_a_shifted_mapping_does_not_count_as_the_same_group():
    assert not gid_mapped(996, "0 100000 65536\n")


def test_malformed_map_lines_are_ignored():
    assert not gid_mapped(996, "garbage\n1 2\n")
    assert gid_mapped(5, "garbage\n0 0 10\n")
