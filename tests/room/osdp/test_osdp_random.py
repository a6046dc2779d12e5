"""libosdp 3.2.9 (PyPI) draws RND.A from an unseeded C ``rand()``: without the panel's reseeding
every daemon start would send the same challenges.  Two processes must send different ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Starts the panel against the simulator and prints the first challenge it sends (RND.A, hex).
_SCRIPT = r"""
import asyncio, os, secrets, sys
from pathlib import Path
from firmware_app.room.inbox import EventInbox
from firmware_app.room.osdp import handshake
from firmware_app.room.osdp.panel import OsdpPanel
from firmware_app.room.osdp.settings import load_osdp_config
from peers.osdp_door import DoorController, PtyPair

challenges = []
original = handshake.HandshakeWatch.sent
def sent(self, chunk):
    found = original(self, chunk)
    if found:
        challenges.extend(self._rnd_a.values())
    return found
handshake.HandshakeWatch.sent = sent

async def main(work):
    key = secrets.token_bytes(16)
    (work / "k").write_text(key.hex()); os.chmod(work / "k", 0o600)
    pty = PtyPair()
    sim = DoorController(pty, scbk=key)
    sim.start()
    config = load_osdp_config({"device": pty.slave_path, "readers": [{"name": "r", "door": "d", "address": 101, "key_file": "k"}]}, work)
    inbox = EventInbox()
    panel = OsdpPanel(config, inbox)
    await panel.start()
    try:
        await asyncio.wait_for(inbox.get(), 10)
    finally:
        await panel.stop()
        sim.stop()
        pty.close()
    print(challenges[0].hex())

asyncio.run(main(Path(sys.argv[1])))
"""


def _first_challenge(work: Path) -> str:
    work.mkdir()
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(work)], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_two_daemon_starts_send_different_challenges(tmp_path):
    first, second = _first_challenge(tmp_path / "a"), _first_challenge(tmp_path / "b")
    assert len(first) == 16 and first != second
    assert "d764c8cce93255c4" not in (first, second)  # what unseeded libosdp 3.2.9 sends first
