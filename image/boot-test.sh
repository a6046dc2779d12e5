#!/usr/bin/env bash
# Boots an image made by `image/build.sh OUT_DIR --test-site` under qemu (software emulation: no
# usable KVM here) and waits for csd's READY=1 on the serial console, i.e. the line of
# cs-appliance-ready.service, which systemd starts only after csd's READY=1.  Exits 0 when it
# came, 1 when the boot failed or timed out.  The image's files are not changed (the state
# partition is copied).  About 2–3 minutes here.
#
#   image/boot-test.sh OUT_DIR [TIMEOUT_S [ALSO]]
#
# ALSO: a further text to wait for on the console (the test site's "SANDBOX-PROBE " line).
set -euo pipefail
out=${1:?usage: image/boot-test.sh OUT_DIR [TIMEOUT_S [ALSO]]}
timeout_s=${2:-600}
also=${3:-}
command -v qemu-system-x86_64 >/dev/null || { echo "boot-test: qemu-system-x86_64 is missing (apt-get install qemu-system-x86)" >&2; exit 1; }
run=$(mktemp -d)
trap 'kill "$qemu" 2>/dev/null || true; rm -rf "$run"' EXIT
cp --sparse=always "$out/state.ext4" "$run/state.ext4"
console="$out/console.log"
: > "$console"
t0=$(date +%s)
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 1536 -smp 2 \
    -kernel "$out/vmlinuz" -initrd "$out/initrd.img" -append "$(cat "$out/cmdline")" \
    -drive file="$out/root.squashfs",if=virtio,format=raw,readonly=on \
    -drive file="$out/root.verity",if=virtio,format=raw,readonly=on \
    -drive file="$run/state.ext4",if=virtio,format=raw \
    -nic none -display none -monitor none -serial file:"$console" -no-reboot &
qemu=$!
ready='cs-appliance: csd is ready (READY=1)'
while [ $(( $(date +%s) - t0 )) -lt "$timeout_s" ]; do
    if grep -qF "$ready" "$console" && { [ -z "$also" ] || grep -qF "$also" "$console"; }; then
        echo "boot-test: READY=1 after $(( $(date +%s) - t0 )) s (console: $console)"
        exit 0
    fi
    if ! kill -0 "$qemu" 2>/dev/null; then
        echo "boot-test: the VM stopped before csd was ready; the console's end:" >&2
        tail -40 "$console" >&2
        exit 1
    fi
    sleep 2
done
echo "boot-test: no READY=1 within $timeout_s s; the console's end:" >&2
tail -40 "$console" >&2
exit 1
