"""The printable form of a room report (reportlab): a summary, a timeline picture, the visits and
the alarms of the period."""

from __future__ import annotations

import datetime as dt
import io

from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from firmware_app.clock import JST
from firmware_app.room.actions import RecordRow
from firmware_app.room.report import Visit

__all__ = ["render_pdf"]

_MAX_LANES = 24
_TABLE_STYLE = TableStyle([
    ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
    ("FONT", (0, 1), (-1, -1), "Helvetica", 8),
    ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
    ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
])


def _t(value: dt.datetime | None) -> str:
    return value.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _timeline(visits: list[Visit], alarms: list[RecordRow], start: dt.datetime, end: dt.datetime, width: float) -> Drawing:
    """One lane per holder with a bar per visit, and a red mark per alarm raised."""
    holders = sorted({v.holder for v in visits})[:_MAX_LANES]
    lane_h, left, top_pad = 14.0, 70.0, 20.0
    height = top_pad + lane_h * (len(holders) + 1) + 16
    d = Drawing(width, height)
    span_s = (end - start).total_seconds()

    def x(at: dt.datetime | None, default: float) -> float:
        if at is None:
            return default
        frac = min(max((at - start).total_seconds() / span_s, 0.0), 1.0)
        return left + frac * (width - left - 10)

    axis_y = 12.0
    d.add(Line(left, axis_y, width - 10, axis_y, strokeColor=colors.black))
    for i in range(7):
        tick = start + (end - start) * i / 6
        d.add(String(x(tick, left) - 15, 2, tick.astimezone(JST).strftime("%m-%d %H:%M"), fontSize=5))
    for lane, holder in enumerate(holders):
        y = axis_y + 6 + lane_h * (lane + 1)
        d.add(String(2, y + 2, holder[:18], fontSize=6))
        for v in visits:
            if v.holder == holder:
                x0, x1 = x(v.entered, left), x(v.left, width - 10)
                d.add(Rect(x0, y, max(x1 - x0, 1.5), lane_h - 5, fillColor=colors.steelblue, strokeColor=None))
    y_alarm = axis_y + 6 + lane_h * (len(holders) + 1)
    d.add(String(2, y_alarm, "alarms", fontSize=6))
    for a in alarms:
        ax = x(a.at, left)
        d.add(Line(ax, axis_y, ax, y_alarm + 6, strokeColor=colors.red, strokeWidth=0.6))
    return d


def render_pdf(rows: list[RecordRow], visits: list[Visit], start: dt.datetime, end: dt.datetime) -> bytes:
    styles = getSampleStyleSheet()
    out = io.BytesIO()
    page = landscape(A4)
    doc = SimpleDocTemplate(out, pagesize=page, leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=12 * mm,
                            title="Machine room access report", author="cs-appliance", invariant=True)
    raised = [r for r in rows if r.kind == "alarm_raised"]
    restored = {r.alarm_id: r for r in rows if r.kind == "alarm_restored"}
    acked = {r.alarm_id: r for r in rows if r.kind == "alarm_acknowledged"}
    denied = [r for r in rows if r.kind == "denied"]
    story = [
        Paragraph("Machine room access report", styles["Title"]),
        Paragraph(f"Period {_t(start)} to {_t(end)} (JST). Visits: {len(visits)}. Refused attempts: {len(denied)}. Alarms raised: {len(raised)}.", styles["Normal"]),
        Spacer(1, 4 * mm),
        _timeline(visits, raised, start, end, page[0] - 24 * mm),
        Spacer(1, 4 * mm),
        Paragraph("Visits", styles["Heading2"]),
    ]
    visit_rows = [["holder", "door", "entered", "left", "duration (s)", "camera corroborated"]]
    visit_rows += [[v.holder, v.door, _t(v.entered), _t(v.left), "-" if v.duration_s is None else f"{v.duration_s:.0f}",
                    "-" if v.corroborated is None else ("yes" if v.corroborated else "no")] for v in visits]
    story.append(Table(visit_rows, repeatRows=1, style=_TABLE_STYLE))
    story += [Spacer(1, 4 * mm), Paragraph("Alarms", styles["Heading2"])]
    alarm_rows = [["raised", "alarm", "source", "restored", "acknowledged by", "alarm ID"]]
    for r in raised:
        back, ack = restored.get(r.alarm_id), acked.get(r.alarm_id)
        alarm_rows.append([_t(r.at), r.alarm_kind or "", r.source or "", _t(back.at) if back else "-", (ack.actor or "-") if ack else "-", r.alarm_id or ""])
    story.append(Table(alarm_rows, repeatRows=1, style=_TABLE_STYLE))
    story += [Spacer(1, 4 * mm), Paragraph("Refused attempts", styles["Heading2"])]
    denied_rows = [["time", "door", "holder", "reason"]] + [[_t(r.at), r.door, r.holder or "(unknown badge)", r.reason or ""] for r in denied]
    story.append(Table(denied_rows, repeatRows=1, style=_TABLE_STYLE))
    doc.build(story)
    return out.getvalue()
