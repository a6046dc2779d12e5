"""Retention periods set by law, and the day a kept version falls due."""

from __future__ import annotations

import datetime as dt

#: Superseded and removed 本人確認情報 are kept 150 years from the notice that superseded or
#: removed them (住基法施行令 第34条).
HISTORY_RETENTION_YEARS = 150


def retention_due(superseded_on: str, years: int = HISTORY_RETENTION_YEARS) -> str:
    """The day a history version is deleted: the anniversary ``years`` on (29 Feb → 1 Mar)."""
    y, m, d = int(superseded_on[:4]), int(superseded_on[4:6]), int(superseded_on[6:])
    try:
        due = dt.date(y + years, m, d)
    except ValueError:
        due = dt.date(y + years, 3, 1)
    return due.strftime("%Y%m%d")


#: Destination records (送付先情報) are kept "less than one year" (PIA): at the latest this many
#: days after they were taken, even if the card system never acknowledged them.
DESTINATION_MAX_DAYS = 364

#: Default life of a move-out certificate after its planned move-out date (domain-facts §4c:
#: the special move-in is impossible 30 days after it; configurable).
MOVEOUT_KEEP_DAYS = 30


def _date(yyyymmdd: str) -> dt.date:
    return dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))


def days_after(yyyymmdd: str, days: int) -> str:
    """The date ``days`` after ``yyyymmdd``."""
    return (_date(yyyymmdd) + dt.timedelta(days=days)).strftime("%Y%m%d")


def moveout_due(planned_moveout_date: str, keep_days: int = MOVEOUT_KEEP_DAYS) -> str:
    """The day an unused move-out certificate is deleted."""
    return days_after(planned_moveout_date, keep_days)


def destination_due(taken_on: str) -> str:
    """The day a destination record is deleted even if the card system never took it."""
    return days_after(taken_on, DESTINATION_MAX_DAYS)


def epoch_period_of(due_yyyymmdd: str, retention_class: str) -> str:
    """The epoch (period) a record due on ``due_yyyymmdd`` is sealed under: a year for history
    (a year's superseded versions share one key), a month for the short-lived classes."""
    return due_yyyymmdd[:4] if retention_class == "history" else due_yyyymmdd[:6]


def epoch_over(period: str, today: str) -> bool:
    """True once every date of the epoch ``period`` (YYYY or YYYYMM) lies before ``today``:
    every record sealed under it is due, so its key may be destroyed."""
    if len(period) == 4:
        return today > f"{period}1231"
    if len(period) == 6:
        year, month = int(period[:4]), int(period[4:])
        last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).strftime("%Y%m%d")
        return today > last
    raise ValueError("an epoch period is YYYY or YYYYMM")
