"""The service layer's error family as the links see it."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of the service's own errors."""


class ServiceUnavailable(ServiceError):
    """The service cannot serve now (HSM lost, storage failing): it fails closed; retry later."""
