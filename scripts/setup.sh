#!/usr/bin/env bash
# Installs what the appliance and its tests need on Debian 12, as root; safe to run again.
# scripts/setup.sh [--image]
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(softhsm2 opensc python3 python3-venv python3-dev gcc pkg-config libsystemd-dev systemd systemd-container debootstrap mosquitto mosquitto-clients)
# --image: also what image/build.sh and image/boot-test.sh need (not CI's: the boot test is opt-in).
if [ "${1:-}" = "--image" ]; then
    packages+=(squashfs-tools cryptsetup-bin e2fsprogs qemu-system-x86)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The first python3 on PATH that is 3.11 or newer (Debian 12's is 3.11).
python=python3
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "setup: Python 3.11+ is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
echo "setup: ready ($(.venv/bin/python --version))"
