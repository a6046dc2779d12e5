"""The role matrix, personal-data exposure and the two-person rule, against a running CS over its
real console socket (real SoftHSM2, LMDB and Unix socket)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware_app.console.errors import E_FORBIDDEN, E_NOT_CONFIGURED, E_REFUSED, ConsoleError
from firmware_app.service.offsite import open_parts_blocking
from peers.register_stream import RegisterStream
from tests.console.conftest import console_toml, login, seed_operators
from tests.daemon.rig import TODAY, running_cs

POPULATION = 20


def _records() -> list:  # type: ignore[type-arg]
    return list(RegisterStream(population=POPULATION, seed=11, today=TODAY).initial_records())


async def _refused(client, error_code: str, cmd: str, **args: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConsoleError) as caught:
        await client.call(cmd, **args)
    assert caught.value.code == error_code, (cmd, caught.value.code, str(caught.value))


def test_role_matrix_and_personal_data(tmp_path: Path, pki, hsm_config, token, recipient) -> None:  # type: ignore[no-untyped-def]
    records = _records()
    code = records[0].resident_code

    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, preload=records, extra=console_toml(tmp_path, recipient=recipient[0])) as rig:
            await seed_operators(rig.daemon)
            sock = rig.daemon.config.console.socket_path
            clerk = await login(sock, "clerk1")
            view = (await clerk.call("confirm", code=code))["resident"]
            assert set(view) == {"code", "name", "kana", "birth_date", "sex", "address"}  # no individual number, no history
            assert view["code"] == code
            by_number = await clerk.call("search", number=records[0].individual_number) if records[0].individual_number else None
            assert by_number is None or by_number["residents"] == [view]
            four = await clerk.call("search", name=records[0].name_kana, birth=records[0].birth_date)
            assert view in four["residents"]
            national = await clerk.call("national-query", code=code)
            assert national["count"] == 1 and set(national["residents"][0]) == {"code", "name", "birth_date", "sex", "address"}
            # A clerk cannot export, manage operators or read the audit log.
            await _refused(clerk, E_FORBIDDEN, "export-request", kind="check-file", reason="media for the prefecture")
            await _refused(clerk, E_FORBIDDEN, "operator-add", operator="x1", role="clerk", password="Whatever-pass-1")
            await _refused(clerk, E_FORBIDDEN, "audit-show")
            await _refused(clerk, E_FORBIDDEN, "audit-verify")
            # The system operator sees status but no personal data.
            system = await login(sock, "sys1")
            status = await system.call("status")
            assert status["room"] == "machine room not configured"
            assert set(status["links"]) == {"prefecture", "card_system"}
            for cmd in ("confirm", "search", "national-query"):
                await _refused(system, E_FORBIDDEN, cmd, code=code)
            await _refused(system, E_FORBIDDEN, "export-request", kind="check-file", reason="x")
            summary = await system.call("check-summary")
            assert summary["residents"] == POPULATION
            backup = await system.call("backup-run", out=str(tmp_path / "backup1"))
            assert (tmp_path / "backup1" / "manifest.json").exists() and backup["size_bytes"] > 0
            await _refused(system, E_REFUSED, "backup-run", out="relative/dir")
            supervisor = await login(sock, "sup1")
            ran = await supervisor.call("retention-run")
            assert ran["audit_entries"] == 0 and ran["history_versions"] == 0
            assert (await system.call("retention-reports"))["reports"]
            await supervisor.close()
            # Room commands answer "machine room not configured" when no RoomPort is wired.
            await _refused(system, E_NOT_CONFIGURED, "room-status")
            # The auditor reads the audit trail; residents appear there by pseudonym only.
            auditor = await login(sock, "aud1")
            entries = (await auditor.call("audit-show", resident=code))["entries"]
            assert [e["kind"] for e in entries] == ["resident.confirm"] + ["resident.shown"] * (len(entries) - 1)
            assert len({e["subject"] for e in entries}) == 1 and entries[0]["subject"].startswith("resident:") and code not in str(entries)
            await _refused(auditor, E_FORBIDDEN, "confirm", code=code)
            kinds = {e["kind"] for e in (await auditor.call("audit-show", limit=1000))["entries"]}
            assert {"console.login", "console.forbidden", "operator.added", "operator.password_changed", "resident.confirm"} <= kinds
            for client in (clerk, system, auditor):
                await client.close()

    asyncio.run(scenario())


def test_two_person_rule(tmp_path: Path, pki, hsm_config, token, recipient) -> None:  # type: ignore[no-untyped-def]
    records = _records()
    codes = [r.resident_code for r in records[:3]]

    async def scenario() -> None:
        async with running_cs(tmp_path, pki, hsm_config, token, preload=records, extra=console_toml(tmp_path, recipient=recipient[0])) as rig:
            await seed_operators(rig.daemon)
            sock = rig.daemon.config.console.socket_path
            admin, sup1, sup2 = await login(sock, "admin"), await login(sock, "sup1"), await login(sock, "sup2")
            # A security admin cannot approve their own export request.
            own = (await admin.call("export-request", kind="residents", reason="court order 12", codes=codes))["export"]
            await _refused(admin, E_REFUSED, "export-approve", export_id=own["export_id"])
            await _refused(admin, E_REFUSED, "export-write", export_id=own["export_id"])  # not approved yet
            # A different supervisor approves; then only the requester writes it, once.
            await sup1.call("export-approve", export_id=own["export_id"])
            await _refused(sup2, E_REFUSED, "export-write", export_id=own["export_id"])
            written = await admin.call("export-write", export_id=own["export_id"])
            await _refused(admin, E_REFUSED, "export-write", export_id=own["export_id"])
            parts = dict(open_parts_blocking(Path(written["path"]), recipient[1]))
            rows = parts["residents.csv"].decode().splitlines()
            assert len(rows) == 4 and all(c in parts["residents.csv"].decode() for c in codes)
            assert Path(written["path"]).stat().st_mode & 0o777 == 0o600
            # The consistency-check file under the same rule, approved by the other supervisor.
            req = (await sup1.call("export-request", kind="check-file", reason="media for the prefecture"))["export"]
            await _refused(sup1, E_REFUSED, "export-approve", export_id=req["export_id"])
            await sup2.call("export-approve", export_id=req["export_id"])
            done = await sup1.call("export-write", export_id=req["export_id"])
            names = [name for name, _ in open_parts_blocking(Path(done["path"]), recipient[1])]
            assert names[-1] == "check-trailer.msgpack" and names[0].startswith("check-chunk-")
            # Destination records for media (none are waiting here: the card system has them all).
            dest = (await sup2.call("export-request", kind="destinations", reason="card system link down"))["export"]
            await admin.call("export-approve", export_id=dest["export_id"])
            done = await sup2.call("export-write", export_id=dest["export_id"])
            assert open_parts_blocking(Path(done["path"]), recipient[1]) == []
            auditor = await login(sock, "aud1")
            kinds = [e["kind"] for e in (await auditor.call("audit-show", kind="export.", limit=100))["entries"]]
            assert kinds.count("export.requested") == 3 and kinds.count("export.approved") == 3 and kinds.count("export.written") == 3
            assert "export.decision_refused" in kinds
            for client in (admin, sup1, sup2, auditor):
                await client.close()

    asyncio.run(scenario())
