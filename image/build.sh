#!/usr/bin/env bash
# Builds the appliance image from Debian's packages and this checkout, without loop devices or
# mounts (../shared/reference/appliance.md §3):
#
#   image/build.sh OUT_DIR [--test-site]      # as root, after scripts/setup.sh
#
# OUT_DIR receives
#   vmlinuz, initrd.img   the Debian kernel and a dracut initramfs that opens the verity root
#   root.squashfs         the read-only root (zstd), with the project, its units enabled
#   root.verity           its dm-verity hash tree; root.roothash the root hash (on the kernel command line)
#   state.ext4            the writable partition (LABEL=cs-state), mounted at /var: the store, the
#                         SoftHSM2 token, the journal, and the site's configuration
#                         (/etc/cs-appliance is a link to /var/lib/cs-appliance-site)
#   cmdline               the kernel command line that boots it; image/boot-test.sh uses all of this
#   SHA256SUMS            of everything above
#
# --test-site stages a provisioned test site on the state partition (a fresh SoftHSM2 token, test
# PKI, 1,000 synthetic residents; no peers), so that csd reaches ready at boot, and adds the test
# sandbox probe (cs-sandbox-probe.service: csd's sandbox running tests/appliance/sandbox_probe.py,
# its result on the console); without it the state partition holds no site configuration and csd
# waits for the integrator (systemd/README.md).
#
# Reproducible: file times are clamped to SOURCE_DATE_EPOCH (default: the last commit's time) and
# mksquashfs/mkfs.ext4 are given fixed times, UUIDs and hash seeds; what still differs between two
# builds is what Debian's mirror serves on the day (pin a snapshot.debian.org mirror with
# CS_DEBIAN_MIRROR for bit-for-bit rebuilds).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=${1:?usage: image/build.sh OUT_DIR [--test-site]}
test_site=${2:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
for tool in mksquashfs veritysetup mkfs.ext4; do
    command -v "$tool" >/dev/null || { echo "build: $tool is missing (scripts/setup.sh --image installs it)" >&2; exit 1; }
done

t0=$(date +%s)
base=$(bash image/rootfs.sh --with-kernel)
work=$(mktemp -d /var/tmp/cs-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
echo "build: copying the base root" >&2
cp -a "$base" "$root"
rm -f "$root/.cs-rootfs-complete"

echo "build: installing the project and its units" >&2
bash image/install-app.sh "$root" --enable
install -m 0644 systemd/cs-appliance-ready.service "$root/usr/lib/systemd/system/"
systemctl --root="$root" enable cs-appliance-ready.service >&2

if [ "$test_site" = "--test-site" ]; then
    echo "build: staging a test site (token, PKI, 1,000 synthetic residents)" >&2
    ./.venv/bin/python -m peers.appliance_root --root "$root" --work "$work/stage" --population 1000 --sandbox-probe >&2
fi
# The site's configuration lives on the writable partition; the root only links to it.
mkdir -p "$root/etc/cs-appliance/credentials"
chmod 0755 "$root/etc/cs-appliance"; chmod 0700 "$root/etc/cs-appliance/credentials"
mv "$root/etc/cs-appliance" "$root/var/lib/cs-appliance-site"
ln -s /var/lib/cs-appliance-site "$root/etc/cs-appliance"
install -m 0644 image/files/fstab "$root/etc/fstab"
install -m 0644 image/files/tmpfiles-cs-appliance.conf "$root/etc/tmpfiles.d/cs-appliance.conf"
install -D -m 0644 image/files/journald.conf "$root/etc/systemd/journald.conf.d/cs-appliance.conf"
echo cs-appliance > "$root/etc/hostname"
# An empty machine-id: systemd makes a transient one at each boot on a read-only root.
: > "$root/etc/machine-id"
# No remote login: no ssh server in the root (rootfs.sh checks), no network configured, the
# root account locked.  Operators log in at the local console (tty1, ttyS0) with their own
# accounts, made at installation (systemd/README.md).
chroot "$root" passwd -l root >/dev/null
systemctl --root="$root" mask systemd-networkd.service systemd-resolved.service >/dev/null 2>&1 || true

echo "build: kernel and initramfs (dracut: systemd, veritysetup, squashfs)" >&2
kver=$(ls "$root/lib/modules" | sort -V | tail -1)
for fs in proc sys dev; do mount --bind "/$fs" "$root/$fs"; done
trap 'umount "$root/dev" "$root/sys" "$root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
chroot "$root" dracut --quiet --force --no-hostonly --reproducible \
    --add "systemd systemd-veritysetup dm" --add-drivers "squashfs dm-verity virtio_blk virtio_pci ext4" \
    --omit "network plymouth" "/tmp/initrd.img" "$kver" >&2 </dev/null
umount "$root/dev" "$root/sys" "$root/proc"
trap 'rm -rf "$work"' EXIT
mv "$root/tmp/initrd.img" "$out/initrd.img"
cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"

echo "build: state partition (/var) and read-only root" >&2
find "$root" -xdev -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} + 2>/dev/null || true
rm -f "$out/state.ext4" "$out/root.squashfs"
E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH mkfs.ext4 -q -L cs-state -U clear -E hash_seed=00000000-0000-0000-0000-000000000000 \
    -d "$root/var" "$out/state.ext4" 4G
find "$root/var" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
mksquashfs "$root" "$out/root.squashfs" -comp zstd -noappend -quiet -all-root >&2  # times from SOURCE_DATE_EPOCH
veritysetup format "$out/root.squashfs" "$out/root.verity" --salt=0000000000000000000000000000000000000000000000000000000000000000 \
    --uuid=00000000-0000-0000-0000-000000000000 | awk '/^Root hash:/{print $3}' > "$out/root.roothash"
roothash=$(cat "$out/root.roothash")
echo "roothash=$roothash systemd.verity_root_data=/dev/vda systemd.verity_root_hash=/dev/vdb root=/dev/mapper/root ro console=ttyS0 panic=10" > "$out/cmdline"
(cd "$out" && sha256sum vmlinuz initrd.img root.squashfs root.verity state.ext4 cmdline > SHA256SUMS)
echo "build: done in $(( $(date +%s) - t0 )) s: $out" >&2
