"""Child-process scenario for the retention tests (its own SoftHSM2 token: they destroy epoch keys).

argv: state_dir, step, [batch].  Steps:
  build  — 60 residents, three rounds of changes on 2026-11-26, 2027-03-01 and 2028-06-15, a move-out
           certificate (planned 2026-12-01) and two destination records taken 2026-11-26 (one of
           them acknowledged); prints the history keys per round as JSON.
  sweep  — the clock at the date in argv[3]; one retention run; prints the report and what is left.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from child_identity import PRELUDE

exec(PRELUDE)  # noqa: S102  (defines state, token, clock, store, keyring, identity)

import msgspec  # noqa: E402

from firmware_app.clock import JST  # noqa: E402
from firmware_app.domain.destination import destination_record_of  # noqa: E402
from firmware_app.domain.notices import encode_entry  # noqa: E402
from firmware_app.domain.updates import IdentityChange  # noqa: E402
from firmware_app.service.intake import Intake  # noqa: E402
from firmware_app.service.outbox import Outbox  # noqa: E402
from firmware_app.service.retention import RetentionSweep  # noqa: E402
from peers.population import generate  # noqa: E402
from peers.national import moveout_certificate_of  # noqa: E402
from storage import layout  # noqa: E402

g = globals()
state, token, clock, store, keyring, identity = (g[n] for n in ("state", "token", "clock", "store", "keyring", "identity"))
intake = Intake(
    store, keyring, identity,
    prefecture=Outbox(store, keyring, layout.OUTBOX_PREF), card_system=Outbox(store, keyring, layout.OUTBOX_NATIONAL),
    clock=clock,
)
ROUNDS = ("20261126", "20270301", "20280615")


def at(day: str) -> None:
    clock.set(dt.datetime(int(day[:4]), int(day[4:6]), int(day[6:]), 9, tzinfo=JST))


def history_keys() -> list[str]:
    with store.read() as r:
        return sorted(k.hex() for k, _ in r.items(layout.HISTORY))


step = sys.argv[2]
if step == "build":
    at(ROUNDS[0])
    records = list(generate(60, seed=4, today=ROUNDS[0]))
    identity.load_blocking(records)
    cert = moveout_certificate_of(records[0], planned_moveout_date="20261201", from_municipality_code="131016")
    assert intake.apply_blocking("national", 1, [cert]).count == 1
    dests = [destination_record_of(r, management_number=f"{i:010d}", processed_on=ROUNDS[0]) for i, r in enumerate(records[1:3])]
    assert intake.apply_blocking("register", 1, dests).count == 2
    outbox = intake.outbox("card_system")
    card_state = outbox.state_blocking()
    store.write(lambda w: outbox.stage_acked(w, card_state.next_seq - 2))  # the first destination record was taken
    seq, per_round = 3, {}
    for day in ROUNDS:
        at(day)
        before = set(history_keys())
        changes = []
        for r in records:
            changes.append(IdentityChange("modify", msgspec.structs.replace(
                r, change_reason="TENKYO", change_date=day, notified_on=day, address=r.address + "（" + day + "）")))
        applied = intake.apply_blocking("register", seq, changes)
        assert applied.refusal is None and applied.count == len(changes), applied
        seq += applied.count
        per_round[day] = sorted(set(history_keys()) - before)
    print(json.dumps({"rounds": per_round, "epochs": keyring.epoch_periods("history"), "card_next": card_state.next_seq}))
elif step == "backup":
    from firmware_app.service.backup import backup_blocking
    from hsm.keys import Signer
    from hsm.labels import SIGNING_LABEL

    backup_blocking(store, Signer(token, SIGNING_LABEL), Path(sys.argv[3]), clock=clock)
    (Path(sys.argv[3]).parent / "cs-signing-key.der").write_bytes(token.public_key_der_blocking(SIGNING_LABEL))
    print(json.dumps({"ok": True}))
elif step == "restore_check":
    # After the sweep destroyed epochs: restore the backup taken before it, and read what opens.
    from firmware_app.service.backup import restore_blocking
    from firmware_app.service.identity_file import IdentityFile
    from firmware_app.service.keyring import Keyring
    from storage.store import Store

    backup = Path(sys.argv[3])
    target = state / "restored"
    restore_blocking(backup, target, (backup.parent / "cs-signing-key.der").read_bytes())
    restored = Store(target)
    rkeyring = Keyring(token, restored, clock)
    rkeyring.open_blocking()
    rfile = IdentityFile(restored, rkeyring, clock)
    with restored.read() as r:
        stored_versions = r.count(layout.HISTORY)
    residents = list(generate(60, seed=4, today="20261126"))
    readable = sum(len(rfile.history_blocking(x.resident_code)) for x in residents)
    current = sum(rfile.get_blocking(x.resident_code) is not None for x in residents)
    print(json.dumps({"stored_versions": stored_versions, "readable_versions": readable, "current": current,
                      "moveout": rkeyring.epoch_periods("moveout")}))
elif step == "sweep":
    at(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000
    report = RetentionSweep(store, keyring, intake, clock, batch=batch).run_blocking()
    with store.read() as r:
        retention_left = sorted(k.hex() for k, _ in r.items(layout.HISTORY_INDEX))
        moveouts = r.count(layout.MOVEOUT)
        expiry_left = r.count(layout.EXPIRY)
    card = intake.outbox("card_system")
    pending = card.pending_blocking(card.state_blocking().acked_through + 1, limit=10, max_bytes=1 << 20)
    print(json.dumps({
        "report": json.loads(report.to_json()),
        "history": history_keys(),
        "retention": retention_left,
        "moveouts": moveouts,
        "expiry": expiry_left,
        "card_pending": [data == encode_entry(__import__("firmware_app.domain.notices", fromlist=["Expired"]).Expired()) for _, data in pending],
        "epochs": {c: keyring.epoch_periods(c) for c in ("history", "moveout", "destination")},
        "token_epochs": token.key_labels_blocking("cs-epoch/"),
        "readable": [len(identity.history_blocking(r.resident_code)) for r in generate(3, seed=4, today="20261126")],
    }))
