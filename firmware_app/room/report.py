"""Reports of the physical-access record for a period: a CSV timeline (one line per record row:
grants, refusals, entries, exits, forced openings, alarms and their restores and
acknowledgements) and a printable PDF (visits, alarms and a timeline picture).  Pure: rows in,
bytes out; times are shown in JST.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from firmware_app.clock import JST
from firmware_app.room.actions import RecordRow

__all__ = ["CSV_COLUMNS", "Visit", "render_report", "visits_of"]

CSV_COLUMNS = ("time", "event", "door", "holder", "visit_id", "duration_s", "camera_corroborated", "reason", "alarm_id", "alarm_kind", "source", "actor")


@dataclass(frozen=True)
class Visit:
    """One stay in the room as the report shows it (``left`` None: still inside at the end)."""

    holder: str
    door: str
    entered: dt.datetime | None
    left: dt.datetime | None
    duration_s: float | None
    corroborated: bool | None


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text  # no formulas in a spreadsheet


def render_csv(rows: list[RecordRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        values = (r.at.astimezone(JST).isoformat(timespec="seconds"), r.kind, r.door, r.holder, r.visit_id, r.duration_s,
                  r.corroborated, r.reason, r.alarm_id, r.alarm_kind, r.source, r.actor)
        writer.writerow([_cell(v) for v in values])
    return out.getvalue().encode("utf-8")


def visits_of(rows: list[RecordRow]) -> list[Visit]:
    """Entries joined with their exits by visit ID (an exit whose entry is before the period has
    no ``entered``)."""
    visits: dict[str, Visit] = {}
    for r in rows:
        if r.visit_id is None or r.holder is None:
            continue
        if r.kind == "entry":
            visits[r.visit_id] = Visit(r.holder, r.door, r.at, None, None, r.corroborated)
        elif r.kind in ("exit", "visit_closed"):
            entered = visits[r.visit_id].entered if r.visit_id in visits else None
            visits[r.visit_id] = Visit(r.holder, r.door, entered, r.at, r.duration_s, r.corroborated)
    return sorted(visits.values(), key=lambda v: (v.entered or v.left or dt.datetime.min.replace(tzinfo=JST)))


def render_report(rows: list[RecordRow], start: dt.datetime, end: dt.datetime, fmt: str) -> bytes:
    if fmt == "csv":
        return render_csv(rows)
    from firmware_app.room.report_pdf import render_pdf  # reportlab loads only for a PDF

    return render_pdf(rows, visits_of(rows), start, end)
