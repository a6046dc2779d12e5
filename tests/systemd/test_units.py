"""The units the product ships (systemd/): verified, rated, and free of secrets — all offline.

systemd is not PID 1 on this machine, so everything here reads unit files only:

- ``systemd-analyze verify --root=TREE``: every directive's syntax and value, unknown keys, the
  dependencies, and that each ``ExecStart=`` names an executable.  TREE is a throw-away root with
  a copy of this machine's own units (``sysinit.target`` and friends must exist) and stubs for the
  product's executables (the image's own test checks the real ones).  Any output fails the test:
  verify only *warns* (exit 0) on an unknown key or a value it cannot parse.
- ``systemd-analyze security --offline=true --threshold=N``: the exposure rating (N = rating × 10).
- ``systemd-sysusers`` and ``systemd-tmpfiles --create`` against the same kind of tree: the user,
  groups, directories, modes and owners they make.

Not checked here (needs a real machine or VM, ../shared/reference/appliance.md §1c): that
DeviceAllow= and IPAddressDeny=/Allow= are enforced, that the credentials arrive, the sandbox as a
whole around a running csd.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from firmware_app.hygiene import secret_variable_names

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "systemd"
DAEMON = "cs-appliance.service"
CREDENTIAL_SOURCES = Path("/etc/cs-appliance/credentials")
ANALYZE = shutil.which("systemd-analyze")

#: Every unit the product ships, with the highest rating (× 10) it may get and the items allowed to
#: count against it.  A new unit fails test_every_unit_has_a_threshold until it is listed here.
#: - cs-appliance.service 1.0: the floor measured for one process that needs the network; 0.9 of it
#:   is the network (PrivateNetwork 0.5, AF_INET/AF_INET6 0.3, the IP allow list 0.1).
#: - cs-appliance-provision.service 0.2: no network at all; what is left is RootDirectory= (would
#:   need an image of its own), AF_UNIX (pcscd) and DeviceAllow= (the USB HSM, ProtectClock's rtc).
#: - cs-appliance-ready.service 0.2: one echo to the console; AF_UNIX is the journal's stream.
#: - cs-room-broker.service 0.9: mosquitto on loopback; all of it the network a broker needs.
RATINGS: dict[str, tuple[int, frozenset[str]]] = {
    DAEMON: (
        10,
        frozenset({
            "RootDirectory=/RootImage=", "RestrictAddressFamilies=~AF_UNIX", "RestrictAddressFamilies=~AF_(INET|INET6)",
            "PrivateNetwork=", "IPAddressDeny=", "DeviceAllow=", "ProcSubset=",
        }),
    ),
    "cs-appliance-provision.service": (
        2,
        frozenset({"RootDirectory=/RootImage=", "RestrictAddressFamilies=~AF_UNIX", "DeviceAllow="}),
    ),
    "cs-room-broker.service": (
        9,
        frozenset({
            "RootDirectory=/RootImage=", "RestrictAddressFamilies=~AF_UNIX", "RestrictAddressFamilies=~AF_(INET|INET6)",
            "PrivateNetwork=", "IPAddressDeny=", "DeviceAllow=",
        }),
    ),
    "cs-appliance-ready.service": (
        2,
        frozenset({"RootDirectory=/RootImage=", "RestrictAddressFamilies=~AF_UNIX", "DeviceAllow="}),
    ),
}

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd)")


def shipped_units() -> list[Path]:
    return sorted(p for p in UNIT_DIR.iterdir() if p.suffix in {".service", ".socket", ".timer", ".path", ".target"})


def drop_in_examples() -> list[Path]:
    return sorted(UNIT_DIR.glob("*.d/*.conf.example"))


def parse_unit(path: Path) -> dict[str, list[str]]:
    """``Section.Key`` → every value assigned, in order (continuation lines joined, comments dropped)."""
    result: dict[str, list[str]] = {}
    section = ""
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        result.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return result


def exec_paths(unit: dict[str, list[str]]) -> set[str]:
    paths = set()
    for key in ("Service.ExecStart", "Service.ExecStartPre", "Service.ExecStartPost", "Service.ExecStop", "Service.ExecReload"):
        for value in unit.get(key, []):
            if value:
                paths.add(value.split()[0].lstrip("@-:+!"))
    return paths


def make_tree(base: Path, drop_ins: bool) -> Path:
    """A root for --root: this machine's units, the product's units (and drop-in examples), stub executables."""
    tree = base / ("with-drop-ins" if drop_ins else "as-shipped")
    host_units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None)
    if host_units is None:
        pytest.skip("no system unit directory on this machine to verify against")
    vendor = tree / "usr/lib/systemd/system"
    shutil.copytree(host_units, vendor, symlinks=True)
    (tree / "lib").symlink_to("usr/lib")
    for unit_path in shipped_units():
        shutil.copy(unit_path, vendor / unit_path.name)
        for exe in exec_paths(parse_unit(unit_path)):
            stub = tree / exe.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
    if drop_ins:
        for example in drop_in_examples():
            target = tree / "etc/systemd/system" / example.parent.name / example.name.removesuffix(".example")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(example, target)
    return tree


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    base = tmp_path_factory.mktemp("systemd-root")
    return {False: make_tree(base, False), True: make_tree(base, True)}


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "info", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""}
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=120, env=env, check=False)


def test_every_unit_has_a_threshold() -> None:
    names = {p.name for p in shipped_units()}
    assert DAEMON in names
    assert names == set(RATINGS), "every shipped unit needs a justified threshold in RATINGS"


@needs_analyze
@pytest.mark.parametrize("drop_ins", [False, True], ids=["as-shipped", "with-drop-in-examples"])
@pytest.mark.parametrize("unit", sorted(RATINGS))
def test_verify(trees: dict[bool, Path], unit: str, drop_ins: bool) -> None:
    proc = analyze("verify", "--man=no", f"--root={trees[drop_ins]}", unit)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "" and proc.stdout.strip() == "", proc.stderr + proc.stdout


@needs_analyze
def test_verify_catches_a_bad_directive(trees: dict[bool, Path], tmp_path: Path) -> None:
    """The check is live: an unknown key and a bad value in a drop-in are reported."""
    tree = trees[True]
    bad = tree / "etc/systemd/system" / f"{DAEMON}.d" / "zz-bad.conf"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("[Service]\nProtectSystm=strict\nPrivateDevices=maybe\n")
    try:
        proc = analyze("verify", "--man=no", f"--root={tree}", DAEMON)
    finally:
        bad.unlink()
    assert "Unknown key name 'ProtectSystm'" in proc.stderr or "Unknown key 'ProtectSystm'" in proc.stderr
    assert "maybe" in proc.stderr


def rating(tree: Path, unit: str, threshold: int) -> tuple[int, float, set[str]]:
    proc = analyze("security", "--offline=true", f"--root={tree}", f"--threshold={threshold}", "--no-pager", unit)
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    counted = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("✗")}
    return proc.returncode, float(match.group(1)), counted


@needs_analyze
@pytest.mark.parametrize("drop_ins", [False, True], ids=["as-shipped", "with-drop-in-examples"])
@pytest.mark.parametrize("unit", sorted(RATINGS))
def test_security_rating(trees: dict[bool, Path], unit: str, drop_ins: bool) -> None:
    threshold, allowed = RATINGS[unit]
    code, score, counted = rating(trees[drop_ins], unit, threshold)
    assert code == 0, f"{unit} rated {score}, above {threshold / 10}"
    assert score <= threshold / 10
    assert counted <= allowed, f"{unit}: counted against it beyond the accepted items: {sorted(counted - allowed)}"


@needs_analyze
def test_daemon_rating_with_peers_is_one_and_the_gate_bites(trees: dict[bool, Path]) -> None:
    """With real peers on the allow list the daemon rates 1.0: a threshold of 0.9 fails it (exit 1)."""
    code, score, _ = rating(trees[True], DAEMON, 10)
    assert (code, score) == (0, 1.0)
    code, _, _ = rating(trees[True], DAEMON, 9)
    assert code == 1


# ---- content: secrets, credentials, the configuration example ------------------------------------


def daemon_unit() -> dict[str, list[str]]:
    return parse_unit(UNIT_DIR / DAEMON)


def credentials_of(unit: dict[str, list[str]]) -> dict[str, Path]:
    creds = {}
    for value in unit.get("Service.LoadCredential", []):
        name, _, source = value.partition(":")
        creds[name] = Path(source)
    return creds


@pytest.mark.parametrize("unit_path", shipped_units(), ids=lambda p: p.name)
def test_no_secret_in_environment_or_command_line(unit_path: Path) -> None:
    unit = parse_unit(unit_path)
    for value in unit.get("Service.Environment", []):
        names = {assignment.partition("=")[0].strip('"') for assignment in value.split()}
        assert not secret_variable_names(dict.fromkeys(names, "")), value
    assert "Service.EnvironmentFile" not in unit and "Service.PassEnvironment" not in unit
    for key in ("Service.ExecStart", "Service.ExecStartPre"):
        for command in unit.get(key, []):
            args = command.split()
            for flag, value in itertools.pairwise(args):
                if flag in {"--pin", "--pin-file", "--key", "--password"}:
                    assert value.startswith("%d/"), f"{flag} must name a credential (%d/…), not {value}"
    for name, source in credentials_of(unit).items():
        assert source.parent == CREDENTIAL_SOURCES, name
    assert "Service.SetCredential" not in unit, "SetCredential= puts the secret in the unit file itself"


def test_daemon_unit_shape() -> None:
    unit = daemon_unit()
    one = {key: values[-1] for key, values in unit.items()}
    assert one["Service.Type"] == "notify"
    assert one["Service.NotifyAccess"] == "main"
    assert one["Service.WatchdogSec"]
    assert one["Service.Restart"] in {"on-failure", "on-abnormal", "on-watchdog"}
    assert one["Service.User"] == "cs-appliance" and one["Service.Group"] == "cs-appliance"
    assert one["Service.UMask"] == "0077"
    assert one["Service.LimitCORE"] == "0"
    assert one["Service.StateDirectory"] == "cs-appliance" and one["Service.StateDirectoryMode"] == "0700"
    assert one["Service.RuntimeDirectoryMode"] == "0750"
    assert "Service.Environment" not in unit
    assert one["Service.ExecStart"].split()[1:] == ["--config", "/etc/cs-appliance/csd.toml"]
    assert unit["Service.IPAddressDeny"] == ["any"]
    assert "Service.ProcSubset" not in unit, "psutil (the watchdog's checks) needs /proc/meminfo and /proc/stat"


def test_pin_and_tls_key_are_credentials_matching_the_config_example() -> None:
    creds = credentials_of(daemon_unit())
    example = tomllib.loads((ROOT / "docs/csd.example.toml").read_text())
    paths = {"hsm.pin_file": example["hsm"]["pin_file"], "tls.key": example["tls"]["key"], "tls.cert": example["tls"]["cert"]}
    for key, text in paths.items():
        assert text.startswith("${CREDENTIALS_DIRECTORY}/"), f"{key} must name a credential: ${{CREDENTIALS_DIRECTORY}}/NAME"
        name = text.removeprefix("${CREDENTIALS_DIRECTORY}/")
        assert name in creds, f"{key}: the unit has no LoadCredential={name}:…"
    assert {"hsm-pin", "cs-key.pem"} <= set(creds)


def test_stop_timeout_covers_the_drain_bound() -> None:
    stop = daemon_unit()["Service.TimeoutStopSec"][-1]
    assert stop.endswith("s") and stop[:-1].isdigit()
    drain = tomllib.loads((ROOT / "docs/csd.example.toml").read_text())["daemon"]["drain_timeout_s"]
    assert int(stop[:-1]) >= drain + 20


# ---- sysusers.d and tmpfiles.d, applied to a throw-away root ---------------------------------------


def ids(tree: Path, database: str) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split(":")[2]) for line in (tree / "etc" / database).read_text().splitlines() if line}


@pytest.mark.skipif(not (shutil.which("systemd-sysusers") and shutil.which("systemd-tmpfiles")), reason="systemd-sysusers/-tmpfiles missing")
def test_sysusers_and_tmpfiles(tmp_path: Path) -> None:
    tree = tmp_path / "root"
    (tree / "etc").mkdir(parents=True)
    # As Debian's base-passwd has them.
    (tree / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    (tree / "etc/group").write_text("root:x:0:\ndialout:x:20:\nnogroup:x:65534:\n")
    users = subprocess.run(["systemd-sysusers", f"--root={tree}", str(UNIT_DIR / "sysusers.d/cs-appliance.conf")],
                           capture_output=True, text=True, timeout=60, check=False)
    assert users.returncode == 0, users.stderr
    passwd, group = ids(tree, "passwd"), ids(tree, "group")
    uid, gid, console = passwd["cs-appliance"], group["cs-appliance"], group["cs-console"]
    assert 0 < uid < 1000 and 0 < gid < 1000, "a system user"
    assert "cs-appliance" in (tree / "etc/group").read_text().split("dialout:x:20:")[1].splitlines()[0].split(",")
    shell = next(line for line in (tree / "etc/passwd").read_text().splitlines() if line.startswith("cs-appliance:")).split(":")[-1]
    assert shell == "/usr/sbin/nologin"

    files = subprocess.run(["systemd-tmpfiles", f"--root={tree}", "--create", str(UNIT_DIR / "tmpfiles.d/cs-appliance.conf")],
                           capture_output=True, text=True, timeout=60, check=False)
    assert files.returncode == 0, files.stderr
    expected = {
        "etc/cs-appliance/credentials": (0o700, 0, 0),
        "var/lib/cs-appliance": (0o700, uid, gid),
        "run/cs-appliance-console": (0o2750, uid, console),
    }
    for rel, (mode, owner, grp) in expected.items():
        st = (tree / rel).stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, owner, grp), rel


def test_units_use_only_known_users_and_groups() -> None:
    declared = set()
    for line in (UNIT_DIR / "sysusers.d/cs-appliance.conf").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] in {"u", "g"}:
            declared.add(fields[1])
    for unit_path in shipped_units():
        unit = parse_unit(unit_path)
        for key in ("Service.User", "Service.Group"):
            for value in unit.get(key, []):
                assert value in declared, f"{unit_path.name}: {key}={value} is not made by sysusers.d"
                assert value != "root"
