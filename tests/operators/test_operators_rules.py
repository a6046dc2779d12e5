"""Pure operator rules and the registry on a real LMDB store: passwords, lockout, grants and dates."""

from __future__ import annotations

import pytest

from firmware_app.operators.errors import InvalidOperatorField, LoginRefused, OperatorExists, PasswordRejected
from firmware_app.operators.kdf import TEST_PARAMS, hash_password, password_matches
from firmware_app.operators.policy import PasswordPolicy, check_date, check_operator_id, valid_on
from firmware_app.operators.registry import Actor, OperatorRegistry
from firmware_app.operators.roles import ROLE_RIGHTS, Right, Role, parse_role, rights_of

ADMIN = Actor("admin", "pts/1")


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Short-1", "at least 12"),
        ("x" * 129, "at most 128"),
        ("alllowercaseletters", "mix"),
        ("Tanaka-secret-01", "operator ID"),
        ("Ab1Ab1Ab1Ab1", "repeat"),
        ("Tab\there-pass-01", "control"),
    ],
)
def test_password_rules_name_the_rule(password: str, rule: str) -> None:
    with pytest.raises(PasswordRejected, match=rule):
        PasswordPolicy().check(password, "tanaka")


def test_a_good_password_passes() -> None:
    PasswordPolicy().check("Maple-river-0002", "tanaka")


def test_ids_dates_and_roles() -> None:
    assert check_operator_id("tanaka.k") == "tanaka.k"
    for bad in ("", "A", "Tanaka", "x" * 33, "1abc", "ta naka", "tanaka\n"):
        with pytest.raises(InvalidOperatorField):
            check_operator_id(bad)
    assert check_date("2027-03-31", "until") == "20270331"
    for bad in ("2027-13-01", "20270332", "tomorrow", ""):
        with pytest.raises(InvalidOperatorField):
            check_date(bad, "until")
    assert valid_on("20260401", "", "20991231") and not valid_on("20260401", "20270331", "20270401")
    assert parse_role("security-admin") is Role.SECURITY_ADMIN
    with pytest.raises(InvalidOperatorField, match="roles are"):
        parse_role("root")
    # Only clerks and supervisors see personal data; only auditors read the audit trail.
    assert {r for r, rights in ROLE_RIGHTS.items() if Right.RESIDENT_READ in rights} == {Role.CLERK, Role.SUPERVISOR}
    assert {r for r, rights in ROLE_RIGHTS.items() if Right.AUDIT_READ in rights} == {Role.AUDITOR}
    assert Right.EXPORT_REQUEST not in rights_of({Role.CLERK}) and Right.OPERATOR_MANAGE not in rights_of({Role.CLERK})


def test_kdf_round_trip_and_redaction() -> None:
    stored = hash_password("Maple-river-0002", TEST_PARAMS)
    assert password_matches("Maple-river-0002", stored) and not password_matches("Maple-river-0003", stored)
    assert "Maple" not in repr(stored) and "redacted" in repr(stored)


def _registry(store, clock) -> OperatorRegistry:  # type: ignore[no-untyped-def]
    return OperatorRegistry(store, clock, kdf_params=TEST_PARAMS)


def test_bootstrap_only_once_and_grants_with_dates(store, clock) -> None:  # type: ignore[no-untyped-def]
    reg = _registry(store, clock)
    reg.bootstrap_blocking("admin", "Harbor-lamp-0001", "local")
    with pytest.raises(OperatorExists):
        reg.bootstrap_blocking("admin2", "Harbor-lamp-0001", "local")
    rec = reg.add_blocking(ADMIN, "tanaka", "First-given-0001", "clerk", "2026-12-01", "2027-03-31")
    assert rec.must_change and rec.created_by == "admin" and rec.created_terminal == "pts/1"
    with pytest.raises(LoginRefused) as refused:
        reg.authenticate_blocking("tanaka", "First-given-0001")  # 2026-11-26: the grant starts on 12-01
    assert refused.value.reason == "no_valid_rights"
    clock.advance(6 * 86400)
    assert reg.authenticate_blocking("tanaka", "First-given-0001").roles_on(reg.today()) == {Role.CLERK}
    rec = reg.grant_blocking(ADMIN, "tanaka", "supervisor", "", "")
    assert rec.roles_on(reg.today()) == {Role.CLERK, Role.SUPERVISOR} and rec.changed_by == "admin"
    rec = reg.revoke_blocking(ADMIN, "tanaka", "all")
    assert rec.roles_on(reg.today()) == frozenset()
    with pytest.raises(InvalidOperatorField):
        reg.add_blocking(ADMIN, "sato", "First-given-0001", "auditor", "2027-01-01", "2026-01-01")
    with pytest.raises(OperatorExists):
        reg.add_blocking(ADMIN, "tanaka", "First-given-0001", "clerk", "", "")


def test_lockout_and_unlock(store, clock) -> None:  # type: ignore[no-untyped-def]
    reg = _registry(store, clock)
    reg.bootstrap_blocking("admin", "Harbor-lamp-0001", "local")
    reasons = []
    for i in range(11):
        with pytest.raises(LoginRefused) as refused:
            reg.authenticate_blocking("admin", f"Wrong-guess-{i:04d}")
        reasons.append(refused.value.reason)
    assert reasons == ["wrong_password"] * 9 + ["wrong_password_locked", "locked"]
    with pytest.raises(LoginRefused):
        reg.authenticate_blocking("admin", "Harbor-lamp-0001")
    reg.unlock_blocking(ADMIN, "admin")
    assert reg.authenticate_blocking("admin", "Harbor-lamp-0001").failures == 0
    with pytest.raises(LoginRefused) as refused:
        reg.authenticate_blocking("nobody", "Harbor-lamp-0001")
    assert refused.value.reason == "unknown_operator"
