"""The domain's error family: every refusal names the item and the rule, never the value."""

from __future__ import annotations


class DomainError(ValueError):
    """Base of every error raised by the domain package."""


class InvalidRecord(DomainError):
    """A record (or one of its items) breaks a rule; nothing may be stored.

    ``item`` is the 別添２ item number (1–40) or a field name for fields outside the layout,
    ``field`` the attribute name and ``rule`` a short stable phrase.  The message carries no
    value from the record, so it is safe to log and to send to a peer.
    """

    def __init__(self, field: str, rule: str, item: int | None = None) -> None:
        self.field = field
        self.rule = rule
        self.item = item
        where = f"item {item} ({field})" if item is not None else field
        super().__init__(f"{where}: {rule}")

    def __reduce__(self) -> tuple[type[InvalidRecord], tuple[str, str, int | None]]:
        # Refusals cross process boundaries (bulk-load workers) with their fields intact.
        return (type(self), (self.field, self.rule, self.item))


class InvalidQuery(DomainError):
    """A search query is malformed or too broad to answer."""
