"""The retention engine with the clock moved: exactly what is due goes, epochs past their period are
destroyed in the HSM, a second run does nothing, a run killed at random moments ends where an
uninterrupted one does.  Each scenario has its own SoftHSM2 token (epoch keys are destroyed)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from child_identity import child_env

CHILD = Path(__file__).with_name("child_retention.py")


def _run(state: Path, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(CHILD), str(state), *args], env=_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(CHILD.parent), str(CHILD.parents[2]), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    state = tmp_path_factory.mktemp("retention")
    return state, _run(state, "build")


def _copy(built: tuple[Path, dict], tmp_path: Path) -> Path:
    state = tmp_path / "state"
    shutil.copytree(built[0], state)
    # The token's config names its own directory: point it at the copy.
    conf = state / "softhsm" / "softhsm2.conf"
    conf.write_text(conf.read_text().replace(str(built[0]), str(state)))
    return state


def test_nothing_is_due_before_150_years(built: tuple[Path, dict], tmp_path: Path) -> None:
    state = _copy(built, tmp_path)
    result = _run(state, "sweep", "21761125")
    assert result["report"]["history_versions"] == 0
    # No history epoch is over; the short-lived classes' epochs (certificate due 2026-12-31 at the
    # latest, destination records within the year) are, and are erased.
    assert result["report"]["epochs_destroyed"] == ["cs-epoch/moveout/202612", "cs-epoch/destination/202711"]
    assert not any(label.startswith("cs-epoch/history/217") for label in result["report"]["epochs_destroyed"])
    assert result["moveouts"] == 0  # the certificate's own period (2026-12-31) did pass
    assert result["report"]["moveout_certificates"] == 1
    assert result["report"]["destination_records"] == 1  # the unacknowledged one, past its year
    assert result["card_pending"] == [True], "the expired destination record is a tombstone now"


def test_exactly_the_due_versions_go_and_their_epoch_is_erased(built: tuple[Path, dict], tmp_path: Path) -> None:
    state = _copy(built, tmp_path)
    rounds = built[1]["rounds"]
    result = _run(state, "sweep", "21770301")
    due = set(rounds["20261126"]) | set(rounds["20270301"])
    assert result["report"]["history_versions"] == len(due)
    assert set(result["history"]) == set(rounds["20280615"]), "exactly the due versions are gone"
    assert len(result["retention"]) == len(rounds["20280615"])
    assert result["report"]["epochs_destroyed"] == [
        "cs-epoch/history/2176", "cs-epoch/moveout/202612", "cs-epoch/destination/202711"
    ]
    assert "cs-epoch/history/2176" not in result["token_epochs"]
    assert "cs-epoch/history/2177" in result["token_epochs"]
    assert result["epochs"]["history"] == ["2177", "2178"]
    assert result["readable"] == [1, 1, 1], "the remaining version of each resident still opens"
    # A second run finds nothing more to do.
    again = _run(state, "sweep", "21770301")
    assert again["report"]["history_versions"] == again["report"]["moveout_certificates"] == 0
    assert again["report"]["epochs_destroyed"] == []
    assert again["history"] == result["history"]


def test_a_sweep_killed_at_random_moments_ends_like_an_uninterrupted_one(built: tuple[Path, dict], tmp_path: Path) -> None:
    reference = _run(_copy(built, tmp_path / "a"), "sweep", "21790101", "1")
    state = _copy(built, tmp_path / "b")
    rng = random.Random(7)
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(state), "sweep", "21790101", "1"], env=_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    final = _run(state, "sweep", "21790101", "1")
    assert final["history"] == reference["history"] == []
    assert final["retention"] == reference["retention"] == []
    assert final["token_epochs"] == reference["token_epochs"]
    assert final["epochs"] == reference["epochs"]


def test_a_backup_from_before_the_sweep_yields_nothing_of_an_erased_epoch(built: tuple[Path, dict], tmp_path: Path) -> None:
    state = _copy(built, tmp_path)
    rounds = built[1]["rounds"]
    backup = tmp_path / "backup"
    _run(state, "backup", str(backup))
    swept = _run(state, "sweep", "21770301")
    assert "cs-epoch/history/2176" in swept["report"]["epochs_destroyed"]
    after = _run(state, "restore_check", str(backup))
    everything = sum(len(v) for v in rounds.values())
    assert after["stored_versions"] == everything, "the backup holds every version as it was"
    # The versions of the erased epoch (superseded 2026-11-26) no longer open; all others do.
    assert after["readable_versions"] == everything - len(rounds["20261126"])
    assert after["current"] == 60
