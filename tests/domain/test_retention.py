"""The day a history version falls due (住基法施行令 第34条: 150 years)."""

from firmware_app.domain.retention import HISTORY_RETENTION_YEARS, retention_due


def test_due_on_the_150th_anniversary():
    assert HISTORY_RETENTION_YEARS == 150
    assert retention_due("20261126") == "21761126"


def test_a_29_february_falls_due_on_1_march_when_the_anniversary_has_none():
    assert retention_due("20280229") == "21780301"
    assert retention_due("20240229", years=4) == "20280229"
