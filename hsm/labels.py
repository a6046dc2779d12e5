"""Labels of the appliance's keys in the token."""

from __future__ import annotations

KEK_LABEL = "cs-kek"
SIGNING_LABEL = "cs-sign"
EPOCH_PREFIX = "cs-epoch/"

#: Retention classes that get epoch keys (see docs/architecture.md, Keys).
EPOCH_CLASSES = ("history", "destination", "moveout", "audit", "physical")


def epoch_label(retention_class: str, period: str) -> str:
    """Token label of the epoch key for one retention class and period (``history``, ``2176``)."""
    if retention_class not in EPOCH_CLASSES:
        raise ValueError("unknown retention class")
    if not period or not period.isascii() or not period.isalnum():
        raise ValueError("epoch period must be ASCII letters or digits")
    return f"{EPOCH_PREFIX}{retention_class}/{period}"
