"""The hsm package's error family; PKCS#11 errors are translated at the boundary (``from None``)."""

from __future__ import annotations


class HsmError(Exception):
    """Base of every error the hsm package raises."""


class HsmUnavailable(HsmError):
    """The module, token or a token key cannot be used: fail closed until the next start."""


class HsmLoginFailed(HsmError):
    """The token refused the PIN."""


class HsmPinLocked(HsmError):
    """The token's user PIN is locked; no login is attempted (it would spend an attempt)."""


class HsmKeyMissing(HsmError):
    """A key the appliance needs is not in the token (not provisioned, or destroyed)."""


class InvalidCiphertext(HsmError):
    """A ciphertext did not open.  Deliberately opaque: no detail of why."""

    def __init__(self) -> None:
        super().__init__("ciphertext did not open")


class InvalidSignature(HsmError):
    """A signature did not verify."""

    def __init__(self) -> None:
        super().__init__("signature did not verify")
