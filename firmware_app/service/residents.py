"""The console's read access to residents: confirm by code, find by number, four-item search, and
the keyed pseudonym that names a resident in the audit trail without personal data.

Every call runs on a reader thread; HSM and storage failures become ``ServiceUnavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from firmware_app.domain.terms import FourItemQuery
from firmware_app.service.errors import ServiceUnavailable
from firmware_app.service.identity_file import Current, IdentityFile
from firmware_app.service.keyring import Keyring
from hsm.errors import HsmError
from storage import layout
from storage.errors import StorageError

__all__ = ["ResidentDirectory"]

T = TypeVar("T")
#: Domain byte of the audit pseudonym's MAC (the blind indexes use N, K, J, B and A).
_PSEUDONYM_DOMAIN = b"P"


class ResidentDirectory:
    """Async, read-only use cases on the identity file for operators."""

    def __init__(self, identity_file: IdentityFile, keyring: Keyring, *, threads: int = 2) -> None:
        self._file = identity_file
        self._keyring = keyring
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="cs-console-read")

    async def _run(self, what: str, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        def call() -> T:
            try:
                return fn(*args, **kwargs)
            except (HsmError, StorageError):
                raise ServiceUnavailable(f"{what} failed") from None

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def pseudonym(self, resident_code: str) -> str:
        """``resident:`` and 16 hex digits of HMAC(index key, code): stable, not reversible without the key."""
        layout.pack_code(resident_code)  # ValueError unless 11 digits
        try:
            mac = self._keyring.index_mac().mac(_PSEUDONYM_DOMAIN + resident_code.encode("ascii"))
        except HsmError:
            raise ServiceUnavailable("the keyring is sealed") from None
        return "resident:" + mac.hex()

    async def get(self, resident_code: str) -> Current | None:
        return await self._run("reading a resident", self._file.get_blocking, resident_code)

    async def find_by_number(self, individual_number: str) -> list[Current]:
        return await self._run("searching by individual number", self._file.find_by_number_blocking, individual_number)

    async def search(self, query: FourItemQuery, *, limit: int = 100) -> list[Current]:
        return await self._run("searching", self._file.search_blocking, query, limit=limit)

    async def count(self) -> int:
        return await self._run("counting residents", self._file.count_blocking)
