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
