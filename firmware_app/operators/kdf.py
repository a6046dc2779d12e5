"""Password hashing with Argon2id (RFC 9106), memory-hard; parameters stored with each hash.

Default: 64 MiB, 3 passes, 4 lanes (~0.18 s on the 2-core VM), the RFC's second recommended
option scaled to the appliance.  ``TEST_PARAMS`` is for tests only and is refused by the daemon's
configuration for production use.
"""

from __future__ import annotations

import hmac
import os

import msgspec
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

SALT_BYTES = 16
HASH_BYTES = 32


class KdfParams(msgspec.Struct, frozen=True, array_like=True):
    """Argon2id parameters: memory in KiB, passes, lanes."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 4


DEFAULT_PARAMS = KdfParams()
#: Cheap parameters for tests only (a login costs microseconds instead of ~0.2 s).
TEST_PARAMS = KdfParams(memory_kib=64, iterations=1, lanes=1)


class PasswordHash(msgspec.Struct, frozen=True, array_like=True):
    params: KdfParams
    salt: bytes
    digest: bytes

    def __repr__(self) -> str:
        return "PasswordHash(<redacted>)"


def _derive(password: str, salt: bytes, params: KdfParams) -> bytes:
    kdf = Argon2id(salt=salt, length=HASH_BYTES, iterations=params.iterations, lanes=params.lanes, memory_cost=params.memory_kib)
    return kdf.derive(password.encode("utf-8"))


def hash_password(password: str, params: KdfParams) -> PasswordHash:
    """A fresh salt and the Argon2id digest of ``password`` (blocking: CPU and memory heavy)."""
    salt = os.urandom(SALT_BYTES)
    return PasswordHash(params, salt, _derive(password, salt, params))


def password_matches(password: str, stored: PasswordHash) -> bool:
    """Constant-time comparison of ``password``'s digest with ``stored``."""
    return hmac.compare_digest(_derive(password, stored.salt, stored.params), stored.digest)


def dummy_hash(params: KdfParams) -> PasswordHash:
    """Compared against when the operator ID is unknown, so that a miss costs as much as a hit."""
    return PasswordHash(params, b"\0" * SALT_BYTES, b"\0" * HASH_BYTES)
