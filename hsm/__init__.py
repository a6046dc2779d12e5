"""Keys that never leave the HSM, behind a small API: seal/open, sign/verify, blind-index MAC, wrap/unwrap.

Only ``hsm.token`` imports python-pkcs11.  Everything here knows PKCS#11, never LMDB.
"""

from hsm.errors import (
    HsmError,
    HsmKeyMissing,
    HsmLoginFailed,
    HsmPinLocked,
    HsmUnavailable,
    InvalidCiphertext,
    InvalidSignature,
)

__all__ = [
    "HsmError",
    "HsmKeyMissing",
    "HsmLoginFailed",
    "HsmPinLocked",
    "HsmUnavailable",
    "InvalidCiphertext",
    "InvalidSignature",
]
