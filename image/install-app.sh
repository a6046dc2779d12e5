#!/usr/bin/env bash
# Installs this checkout into a root made by image/rootfs.sh: the project into
# /opt/cs-appliance/venv (no dependencies fetched: they are in the root already), the units,
# sysusers.d and tmpfiles.d files, the documentation; creates the users; enables csd when asked.
#
#   image/install-app.sh ROOT [--enable]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:?usage: image/install-app.sh ROOT [--enable]}
enable=${2:-}
[ -x "$root/opt/cs-appliance/venv/bin/python" ] || { echo "install-app: $root is not a root from image/rootfs.sh" >&2; exit 1; }

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
./.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps . -w "$wheels" >&2
wheel=$(basename "$(ls "$wheels"/cs_appliance-*.whl)")
mkdir -p "$root/tmp/cs-app"
cp "$wheels/$wheel" "$root/tmp/cs-app/"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    /opt/cs-appliance/venv/bin/python -m pip install -q --disable-pip-version-check --no-index --no-deps --force-reinstall "/tmp/cs-app/$wheel" >&2
rm -rf "$root/tmp/cs-app"

install -m 0644 systemd/cs-appliance.service systemd/cs-appliance-provision.service systemd/cs-room-broker.service "$root/usr/lib/systemd/system/"
install -D -m 0644 systemd/mosquitto/cs-room.conf "$root/etc/cs-appliance/mosquitto/cs-room.conf"
install -D -m 0644 systemd/mosquitto/cs-room.acl "$root/etc/cs-appliance/mosquitto/cs-room.acl"
install -D -m 0644 systemd/cs-appliance.service.d/room.conf.example "$root/usr/share/doc/cs-appliance/room.conf.example"
# Debian's own broker unit (rated 9.6) never runs: cs-room-broker.service is the machine room's.
systemctl --root="$root" mask mosquitto.service >&2
install -D -m 0644 systemd/sysusers.d/cs-appliance.conf "$root/usr/lib/sysusers.d/cs-appliance.conf"
install -D -m 0644 systemd/tmpfiles.d/cs-appliance.conf "$root/usr/lib/tmpfiles.d/cs-appliance.conf"
install -D -m 0644 README.md "$root/usr/share/doc/cs-appliance/README.md"
install -D -m 0644 docs/csd.example.toml "$root/usr/share/doc/cs-appliance/csd.example.toml"
systemd-sysusers --root="$root" >&2
systemd-tmpfiles --root="$root" --create cs-appliance.conf >&2
if [ "$enable" = "--enable" ]; then
    # cs-room-broker is enabled by the integrator with the room (its password file is site data).
    systemctl --root="$root" enable cs-appliance.service >&2
fi
