"""The audit package's one error family."""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit trail's refusals and failures."""


class AuditUnavailable(AuditError):
    """Entries could not be made durable (storage or HSM failure): whoever needs the record must refuse."""


class AuditRefused(AuditError):
    """An entry was malformed (a name too long, a detail not a flat scalar mapping); nothing was recorded."""
