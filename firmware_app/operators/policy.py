"""Password rules, lockout and validity dates (pure, the clock's date passed in)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from firmware_app.operators.errors import InvalidOperatorField, PasswordRejected

_OPERATOR_ID = re.compile(r"[a-z][a-z0-9._-]{1,31}")
_DATE = re.compile(r"\d{8}")
MAX_PASSWORD_CHARS = 128


def check_operator_id(operator_id: str) -> str:
    """An operator ID: 2–32 characters, lowercase ASCII letters, digits, ``.``, ``_``, ``-``."""
    if not isinstance(operator_id, str) or not _OPERATOR_ID.fullmatch(operator_id):
        raise InvalidOperatorField("operator ID must be 2-32 characters: a-z first, then a-z 0-9 . _ -")
    return operator_id


def check_date(text: str, what: str) -> str:
    """A date as ``YYYYMMDD`` (``YYYY-MM-DD`` accepted and normalised)."""
    value = text.replace("-", "") if isinstance(text, str) else ""
    if not _DATE.fullmatch(value) or not ("01" <= value[4:6] <= "12" and "01" <= value[6:] <= "31"):
        raise InvalidOperatorField(f"{what} must be a date YYYY-MM-DD")
    return value


@dataclass(frozen=True)
class PasswordPolicy:
    """Length first (NIST SP 800-63B), with a light mix rule the ward's security policy asks for."""

    min_chars: int = 12
    min_classes: int = 2

    def check(self, password: str, operator_id: str) -> None:
        """Raise ``PasswordRejected`` naming the broken rule."""
        if len(password) < self.min_chars:
            raise PasswordRejected(f"password must have at least {self.min_chars} characters")
        if len(password) > MAX_PASSWORD_CHARS:
            raise PasswordRejected(f"password must have at most {MAX_PASSWORD_CHARS} characters")
        if any(ord(c) < 0x20 or c == "\x7f" for c in password):
            raise PasswordRejected("password must not contain control characters")
        classes = sum(
            bool(re.search(pattern, password)) for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^a-zA-Z0-9]")
        )
        if classes < self.min_classes:
            raise PasswordRejected(f"password must mix at least {self.min_classes} of: lowercase, uppercase, digits, symbols")
        if operator_id.lower() in password.lower():
            raise PasswordRejected("password must not contain the operator ID")
        if len(set(password)) < 4:
            raise PasswordRejected("password must not repeat a few characters")


@dataclass(frozen=True)
class LockoutPolicy:
    """After ``max_failures`` wrong passwords in a row the account locks until a security admin unlocks it."""

    max_failures: int = 10

    def locks_after(self, failures: int) -> bool:
        return failures >= self.max_failures


def valid_on(valid_from: str, valid_until: str, today: str) -> bool:
    """True when ``today`` lies in [valid_from, valid_until] (``valid_until`` empty: open-ended)."""
    return valid_from <= today and (not valid_until or today <= valid_until)
