"""Stage an installed appliance root (image/rootfs.sh + image/install-app.sh) as a site would
after installation: a provisioned SoftHSM2 token and a loaded store in the state directory, the
credentials where the unit's ``LoadCredential=`` reads them, ``csd.toml`` naming the unit's
paths.  Used by the systemd-nspawn integration tests and by the image's boot test.

The token, PKI and store are made on this machine with the project's own tools (the same as
the test stands), then copied into the root with the ownership of the root's service user.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from peers.cs_process import preload_store, provision_cs_token
from peers.rig import Pki, make_pki

__all__ = ["StagedRoot", "install_sandbox_probe", "stage_root"]

STATE = Path("var/lib/cs-appliance")
ETC = Path("etc/cs-appliance")
CREDENTIALS = "${CREDENTIALS_DIRECTORY}"  # the unit's LoadCredential= files, wherever systemd puts them


@dataclass(frozen=True)
class StagedRoot:
    root: Path
    pki: Pki
    public_key: bytes
    listen_port: int


def _service_ids(root: Path, user: str = "cs-appliance") -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise LookupError(f"user {user} is not in {root}/etc/passwd (run image/install-app.sh first)")


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    for p in [path, *path.rglob("*")]:
        if not p.is_symlink():
            os.chown(p, uid, gid)


def stage_root(
    root: Path,
    work: Path,
    *,
    population: int,
    seed: int,
    today: str,
    listen_port: int,
    prefecture_port: int | None = None,
    national_port: int | None = None,
    extra_config: str = "",
) -> StagedRoot:
    """Provision and load under ``work`` (this machine's paths), then install into ``root``."""
    hsm, public_key = provision_cs_token(work / "hsm")
    pki = make_pki(work / "pki")
    store = work / "store"
    if population:
        preload_store(store, hsm, population=population, seed=seed, today=today)
    uid, gid = _service_ids(root)

    state = root / STATE
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    softhsm = state / "softhsm"
    shutil.copytree(hsm.softhsm_conf.parent / "tokens", softhsm / "tokens", dirs_exist_ok=True)  # type: ignore[union-attr]
    (softhsm / "softhsm2.conf").write_text(
        f"directories.tokendir = /{STATE}/softhsm/tokens\nobjectstore.backend = file\nlog.level = ERROR\n"
        "slots.removable = false\nlibrary.reset_on_fork = true\n"
    )
    if population:
        shutil.copytree(store, state / "store", dirs_exist_ok=True)
    (state / "cs-signing-key.der").write_bytes(public_key)
    _chown_tree(state, uid, gid)

    etc = root / ETC
    creds = etc / "credentials"
    creds.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, source in (("hsm-pin", hsm.pin_file), ("cs-key.pem", pki.key("cs")), ("cs-cert.pem", pki.cert("cs"))):
        target = creds / name
        shutil.copyfile(source, target)
        target.chmod(0o600)
    shutil.copyfile(pki.ca, etc / "network-ca.pem")

    peers = f'[peers.register]\npin_sha256 = "{pki.pin("register")}"\n'
    if prefecture_port is not None:
        peers += (
            f'\n[peers.prefecture]\npin_sha256 = "{pki.pin("prefecture")}"\nhost = "127.0.0.1"\n'
            f'port = {prefecture_port}\nserver_name = "localhost"\n'
        )
    if national_port is not None:
        peers += (
            f'\n[peers.national]\npin_sha256 = "{pki.pin("national")}"\nhost = "127.0.0.1"\n'
            f'port = {national_port}\nserver_name = "localhost"\n'
        )
    (etc / "csd.toml").write_text(
        f"""# written by peers.appliance_root for an integration test or the image's boot test
[storage]
path = "/{STATE}/store"

[hsm]
module_path = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "{hsm.token_label}"
pin_file = "{CREDENTIALS}/hsm-pin"
softhsm_conf = "/{STATE}/softhsm/softhsm2.conf"

[tls]
cert = "{CREDENTIALS}/cs-cert.pem"
key = "{CREDENTIALS}/cs-key.pem"
ca = "/{ETC}/network-ca.pem"
handshake_timeout_s = 5

[listen]
host = "127.0.0.1"
port = {listen_port}

{peers}
[links]
backoff_initial_s = 0.05
backoff_max_s = 0.5

[console]
socket = "/run/cs-appliance-console/console.sock"
group = "cs-console"
{extra_config}""",
        encoding="utf-8",
    )
    return StagedRoot(root=root, pki=pki, public_key=public_key, listen_port=listen_port)


PROBE_SOURCE = Path(__file__).resolve().parents[1] / "tests" / "appliance" / "sandbox_probe.py"
#: An address on the loopback interface that the daemon's IP allow list (localhost) does not hold:
#: in a VM, where IPAddressDeny= is enforced, the probe's datagram to it must be refused.
OUTSIDE_ADDRESS = "192.0.2.1"


def install_sandbox_probe(root: Path, *, at_boot: bool = False) -> None:
    """``cs-sandbox-probe.service``: the shipped daemon unit's sandbox, word for word, running
    tests/appliance/sandbox_probe.py instead of csd, with the serial port ttyS1 bound in (not in
    its DeviceAllow=).  ``at_boot``: started at boot, its line forwarded to the console, after a
    helper unit put OUTSIDE_ADDRESS on lo (the image's boot test)."""
    (root / "opt/cs-test").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROBE_SOURCE, root / "opt/cs-test/sandbox_probe.py")
    unit = (root / "usr/lib/systemd/system/cs-appliance.service").read_text()
    unit = re.sub(r"^ExecStart=.*$", "ExecStart=/opt/cs-appliance/venv/bin/python /opt/cs-test/sandbox_probe.py", unit, flags=re.M)
    unit = re.sub(r"^(Type|NotifyAccess|WatchdogSec|Restart|RestartSec)=.*$", "", unit, flags=re.M)
    service = "[Service]\nType=oneshot\nRemainAfterExit=no\nBindPaths=-/dev/ttyS1\n"
    if at_boot:
        service += "StandardOutput=journal+console\nSyslogLevel=notice\n"
        unit = unit.replace("[Unit]", "[Unit]\nAfter=cs-test-address.service\nWants=cs-test-address.service", 1)
        (root / "etc/systemd/system/cs-test-address.service").write_text(
            "[Unit]\nDescription=test only: an address on lo outside csd's IP allow list\n\n"
            f"[Service]\nType=oneshot\nExecStart=/usr/sbin/ip addr add {OUTSIDE_ADDRESS}/32 dev lo\n"
        )
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / "cs-sandbox-probe.service"
        if not link.is_symlink():
            link.symlink_to("/etc/systemd/system/cs-sandbox-probe.service")
    unit = unit.replace("[Service]", service.rstrip("\n"), 1)
    (root / "etc/systemd/system/cs-sandbox-probe.service").write_text(unit)


def main(argv: list[str] | None = None) -> int:
    """``python -m peers.appliance_root --root R --work W``: stage a test site with no peers (the
    image's boot test: csd must reach ready on its own)."""
    import argparse
    import datetime


    parser = argparse.ArgumentParser(prog="python -m peers.appliance_root", description=main.__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--listen-port", type=int, default=7400)
    parser.add_argument("--sandbox-probe", action="store_true", help="also run the sandbox probe at boot (test only)")
    args = parser.parse_args(argv)
    stage_root(
        args.root, args.work, population=args.population, seed=1,
        today=datetime.date.today().strftime("%Y%m%d"), listen_port=args.listen_port,
    )
    if args.sandbox_probe:
        install_sandbox_probe(args.root, at_boot=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
