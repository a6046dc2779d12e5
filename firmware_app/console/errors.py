"""The console package's one error family; ``code`` is what the client sees besides the message."""

from __future__ import annotations

#: Error codes of a console response.
E_MALFORMED = "malformed"
E_TOO_LARGE = "too_large"
E_REPLAYED = "replayed"
E_UNKNOWN_COMMAND = "unknown_command"
E_LOGIN_REQUIRED = "login_required"
E_LOGIN_REFUSED = "login_refused"
E_LOCKED = "locked"
E_FORBIDDEN = "forbidden"
E_PASSWORD_CHANGE = "password_change_required"
E_REFUSED = "refused"
E_UNAVAILABLE = "unavailable"
E_NOT_CONFIGURED = "not_configured"
E_PEER_REFUSED = "peer_refused"
E_CLOSED = "closed"  # client side: the daemon hung up


class ConsoleError(Exception):
    """A console request refused or failed; ``str(exc)`` is safe to show (no personal data)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
