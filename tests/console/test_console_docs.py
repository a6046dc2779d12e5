"""Every command of docs/console.md's walkthrough, run as printed (a real ``csctl`` process, a
real csd console socket), and ``csctl --help`` reads well."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from peers.cs_process import token_env
from peers.register_stream import RegisterStream
from peers.rig import write_config
from storage import layout
from tests.console.conftest import console_toml
from tests.daemon.rig import TODAY, running_cs

DOC = Path(__file__).resolve().parents[2] / "docs" / "console.md"
CSCTL = Path(sys.executable).parent / "csctl"
PW = {"admin": "Harbor-lamp-0001", "tanaka": "Silent-forest-04", "suzuki": "Maple-river-0002", "sato": "Violet-stone-005"}
FIRST = "First-given-0001"


def walkthrough() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.startswith("csctl ")]


def stdin_for(argv: list[str]) -> tuple[list[str], int]:
    """The lines typed at the prompts of one command, and its expected exit status."""
    if argv[1] == "bootstrap-admin":
        return [PW["admin"], PW["admin"]], 0
    user = argv[argv.index("--user") + 1]
    if "passwd" in argv:
        return [FIRST, FIRST, PW[user], PW[user]], 0
    lines = [PW[user]]
    if argv[3:5] == ["operator", "add"]:
        lines += [FIRST, FIRST]
    refused = (user == "admin" and argv[3:5] == ["export", "approve"]) or (user == "tanaka" and "audit" in argv)
    return lines, 1 if refused else 0


def run(argv: list[str], stdin: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CSCTL), *argv[1:]], input="".join(line + "\n" for line in stdin), capture_output=True, text=True, env=env,
        timeout=60, start_new_session=True,  # no controlling tty: the prompts read standard input
    )


def test_the_walkthrough_runs_as_printed(tmp_path: Path, pki, hsm_config, token, recipient) -> None:  # type: ignore[no-untyped-def]
    records = list(RegisterStream(population=20, seed=11, today=TODAY).initial_records())
    extra = console_toml(tmp_path, recipient=recipient[0])
    boot_config = write_config(
        tmp_path / "boot.toml", store=tmp_path / "store", hsm=hsm_config, pki=pki, listen_port=1, prefecture_port=1, national_port=1, extra=extra
    )
    env = token_env(hsm_config) | {"CSCTL_SOCKET": str(tmp_path / "console" / "console.sock")}
    lines = walkthrough()
    assert len(lines) == 19
    outputs: dict[str, str] = {}

    async def scenario() -> None:
        first = shlex.split(lines[0].replace("/etc/cs-appliance/csd.toml", str(boot_config)))
        done = await asyncio.to_thread(run, first, *stdin_for(first)[:1], env)
        assert done.returncode == 0, done.stderr
        async with running_cs(tmp_path, pki, hsm_config, token, preload=records, extra=extra) as rig:
            for line in lines[1:]:
                argv = shlex.split(line)
                stdin, expected = stdin_for(argv)
                done = await asyncio.to_thread(run, argv, stdin, env)
                assert done.returncode == expected, (line, done.stdout, done.stderr)
                outputs[line] = done.stdout
                outputs["stderr " + line] = done.stderr
            shell = await asyncio.to_thread(run, ["csctl", "--user", "sato", "shell"], [PW["sato"], "audit verify", "confirm 77731710239", "whoami", "exit"], env)
            assert shell.returncode == 0, shell.stderr
            outputs["shell"] = shell.stdout
            # One byte of one entry changed: `csctl audit verify` names that entry and exits 1.
            store = rig.daemon.store
            with store.read() as r:
                value = bytearray(r.get(layout.AUDIT, layout.pack_u64(5)))
            value[8] ^= 0x01
            store.write(lambda w: w.put(layout.AUDIT, layout.pack_u64(5), bytes(value)))
            broken = await asyncio.to_thread(run, ["csctl", "--user", "sato", "audit", "verify"], [PW["sato"]], env)
            assert broken.returncode == 1 and "AUDIT CHAIN BROKEN at entry 5" in broken.stdout, broken.stdout
            while_running = await asyncio.to_thread(run, first, [PW["admin"], PW["admin"]], env)
            assert while_running.returncode == 1 and "csd is running" in while_running.stderr
        again = await asyncio.to_thread(run, first, [PW["admin"], PW["admin"]], env)
        assert again.returncode == 1 and "operators exist already" in again.stderr

    asyncio.run(scenario())
    assert "77731710239" in outputs["csctl --user tanaka confirm 77731710239"]
    assert "forbidden" in outputs["stderr csctl --user tanaka audit show"]
    assert "cannot approve" in outputs["stderr csctl --user admin export approve 1"]
    assert "audit chain OK" in outputs["csctl --user sato audit verify"]
    assert "audit chain OK" in outputs["shell"] and "refused: forbidden" in outputs["shell"] and "auditor" in outputs["shell"]
    entries = json.loads(outputs["csctl --user sato --json audit show --resident 77731710239"])["entries"]
    assert {e["kind"] for e in entries} >= {"resident.confirm", "resident.exported"}
    assert "77731710239" not in json.dumps(entries)
    assert Path(tmp_path / "exports" / "export-000001-residents.cse").exists()


def test_help_reads_well() -> None:
    out = subprocess.run([str(CSCTL), "--help"], capture_output=True, text=True, timeout=30, env=dict(os.environ))
    assert out.returncode == 0
    assert "Operator console of the Community Server" in out.stdout
    for command in ("confirm", "search", "national-query", "export", "audit", "operator", "status", "screen", "bootstrap-admin"):
        assert f"    {command}" in out.stdout
    assert max(len(line) for line in out.stdout.splitlines()) <= 100
    sub = subprocess.run([str(CSCTL), "export", "--help"], capture_output=True, text=True, timeout=30)
    assert sub.returncode == 0 and "two-person rule" in sub.stdout
    bad = subprocess.run([str(CSCTL), "no-such-command"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
