"""The appliance image (image/build.sh) boots under qemu to a ready csd (image/boot-test.sh).

Opt-in: about 6 minutes of building and 2–3 of booting under software emulation here, so CI
does not run it; ``CS_IMAGE_TEST=1 .venv/bin/python -m pytest tests/image`` does (as root).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("CS_IMAGE_TEST") != "1", reason="opt-in: CS_IMAGE_TEST=1 (builds and boots the image, ~10 min)"),
]


def test_image_builds_and_boots_to_a_ready_daemon(tmp_path: Path) -> None:
    out = tmp_path / "image"
    build = subprocess.run(["bash", "image/build.sh", str(out), "--test-site"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-4000:]
    for name in ("vmlinuz", "initrd.img", "root.squashfs", "root.verity", "root.roothash", "state.ext4", "cmdline", "SHA256SUMS"):
        assert (out / name).stat().st_size > 0, name
    check = subprocess.run(["veritysetup", "verify", str(out / "root.squashfs"), str(out / "root.verity"), (out / "root.roothash").read_text().strip()], capture_output=True, timeout=300)
    assert check.returncode == 0, check.stderr
    boot = subprocess.run(["bash", "image/boot-test.sh", str(out), "900", "SANDBOX-PROBE "], cwd=REPO, capture_output=True, text=True, timeout=1000)
    console = (out / "console.log").read_text(errors="replace")
    assert boot.returncode == 0, boot.stderr[-4000:]
    assert "cs-appliance: csd is ready (READY=1)" in console
    # In a VM the device and IP policies are enforced (not in nspawn): csd's sandbox, probed.
    line = next(line for line in console.splitlines() if "SANDBOX-PROBE " in line)
    got = json.loads(line.split("SANDBOX-PROBE ", 1)[1].strip())
    assert got["udp_localhost"] == "allowed"
    assert got["udp_outside_allow_list"] == "EPERM", "IPAddressAllow=localhost must refuse other addresses"
    assert got["open_ttyS1"] == "EPERM", "a device outside DeviceAllow= must be refused"
    assert got["write_usr"] == "EROFS" and got["af_packet"] == "EAFNOSUPPORT" and got["no_new_privs"] == "1"
    # No remote login on the console's way up, and the root is the verity device.
    assert "ssh" not in console.lower()
