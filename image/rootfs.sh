#!/usr/bin/env bash
# Builds (or finds in the cache) the appliance's base root: Debian 12 from Debian's packages, with
# systemd as init, SoftHSM2, mosquitto (the machine room's broker) and a Python virtual environment at /opt/cs-appliance/venv holding
# csd's dependencies at the versions of constraints.txt.  The project itself is not in it (it
# changes at every commit); image/install-app.sh adds it on top.  Prints the root's path.
#
#   image/rootfs.sh [--with-kernel]        # as root; CS_IMAGE_CACHE=/var/cache/cs-appliance by default
#
# The root is cached under a name derived from this script, the package list and constraints.txt,
# so the integration tests and the image build reuse it until one of those changes (debootstrap
# takes about 40 s and the packages and wheels another 30–60 s here).  --with-kernel adds
# linux-image-amd64 and dracut with its verity modules (the bootable image needs them; the
# nspawn tests do not).  Reproducible: the Debian mirror's packages as of the build, the pinned
# wheels; SOURCE_DATE_EPOCH is honoured by the image build (image/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

kernel=no
[ "${1:-}" = "--with-kernel" ] && kernel=yes

cache=${CS_IMAGE_CACHE:-/var/cache/cs-appliance}
suite=bookworm
mirror=${CS_DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
base_packages=systemd,systemd-sysv,dbus,python3,python3-venv,softhsm2,libsystemd0,procps,iproute2,kbd,login,mosquitto
kernel_packages="linux-image-amd64 udev dracut dracut-core cryptsetup-bin e2fsprogs"

key=$( { cat image/rootfs.sh constraints.txt; echo "$suite $base_packages $kernel $kernel_packages"; } | sha256sum | cut -c1-16)
root="$cache/rootfs-$key"
if [ -f "$root/.cs-rootfs-complete" ]; then
    echo "$root"
    exit 0
fi

for tool in debootstrap chroot; do
    command -v "$tool" >/dev/null || { echo "rootfs: $tool is missing (apt-get install debootstrap)" >&2; exit 1; }
done
mkdir -p "$cache"
work="$cache/.building-$key.$$"
rm -rf "$work"
trap 'rm -rf "$work"' EXIT

echo "rootfs: debootstrap $suite from $mirror" >&2
debootstrap --variant=minbase --include="$base_packages" "$suite" "$work" "$mirror" >&2

in_root() { chroot "$work" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

if [ $kernel = yes ]; then
    echo "rootfs: kernel and initramfs tooling" >&2
    mount --bind /proc "$work/proc"; mount --bind /sys "$work/sys"; mount --bind /dev "$work/dev"
    trap 'umount "$work/dev" "$work/sys" "$work/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
    in_root apt-get install -y -qq --no-install-recommends $kernel_packages >&2
    umount "$work/dev" "$work/sys" "$work/proc"
    trap 'rm -rf "$work"' EXIT
fi

# csd's dependencies as wheels built here (the host's CPython is 3.11 like the root's), installed
# in the root without an index: the root never fetches code itself.
echo "rootfs: virtual environment with the pinned dependencies" >&2
wheels="$work/tmp/wheelhouse"
mkdir -p "$wheels"
deps=$(python3 -c 'import tomllib,sys; print("\n".join(tomllib.load(open("pyproject.toml","rb"))["project"]["dependencies"]))')
printf '%s\n' "$deps" > "$wheels/requirements.txt"
cp constraints.txt "$wheels/constraints.txt"
"$repo/.venv/bin/python" -m pip wheel -q --disable-pip-version-check -c constraints.txt -r "$wheels/requirements.txt" -w "$wheels" >&2
in_root python3 -m venv /opt/cs-appliance/venv
in_root /opt/cs-appliance/venv/bin/python -m pip install -q --disable-pip-version-check --no-index \
    -f /tmp/wheelhouse -c /tmp/wheelhouse/constraints.txt -r /tmp/wheelhouse/requirements.txt >&2
rm -rf "$wheels"

# No remote login and nothing listening but csd: minbase has no ssh server; make sure of it.
if in_root dpkg-query -W -f='${Status}' openssh-server 2>/dev/null | grep -q 'install ok installed'; then
    echo "rootfs: openssh-server must not be installed" >&2; exit 1
fi
in_root apt-get clean
rm -rf "$work/var/lib/apt/lists/"* "$work/var/cache/apt/"*.bin

touch "$work/.cs-rootfs-complete"
rm -rf "$root"
mv "$work" "$root"
trap - EXIT
echo "$root"
