"""The operators package's one error family."""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every refusal about operators; the message is safe to show the operator."""


class LoginRefused(OperatorError):
    """A login or unlock failed.  One opaque message whatever the cause (unknown ID, wrong password,
    locked, no valid rights): the cause goes to the audit trail, never to the person typing."""

    def __init__(self, reason: str) -> None:
        super().__init__("login refused")
        self.reason = reason


class PasswordRejected(OperatorError):
    """A new password breaks the password rules (the message says which rule, never the password)."""


class UnknownOperator(OperatorError):
    """No operator has that ID."""


class OperatorExists(OperatorError):
    """An operator with that ID exists already."""


class InvalidOperatorField(OperatorError):
    """An operator ID, role or date is malformed."""
