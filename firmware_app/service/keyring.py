"""The identity file's data keys: created in the HSM's randomness, wrapped by the KEK or an epoch key,
kept wrapped in LMDB, unwrapped at start — and all forgotten the moment the HSM is lost (fail closed).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import msgspec

from firmware_app.clock import Clock, SystemClock, today_of
from firmware_app.journal import event
from hsm.config import HsmConfig, open_token
from hsm.errors import HsmError, HsmKeyMissing, HsmUnavailable, InvalidCiphertext
from hsm.keys import (
    HsmIndexMac,
    HsmSealingKey,
    ProcessIndexMac,
    ProcessSealingKey,
    WrappedKey,
)
from hsm.labels import EPOCH_PREFIX, KEK_LABEL, epoch_label
from hsm.token import SECRET_BYTES, WRAP_MECHANISM, Token
from storage import envelope, layout
from storage.store import Store, Writer

log = logging.getLogger(__name__)

SealingKey = ProcessSealingKey | HsmSealingKey
IndexMac = ProcessIndexMac | HsmIndexMac

_KEK_CHECK = b"kek_check"
_ROLE_PREFIX = b"key_role:"
_DESTROYED_PREFIX = b"epoch_destroyed:"
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(WrappedKey)

#: Roles of data keys wrapped by the KEK.
ROLE_IDENTITY = "identity"
ROLE_INDEX = "index"
ROLE_OUTBOX = "outbox"  # outbox entries waiting for a peer's acknowledgement


class Keyring:
    """Data keys by id, the current key of each role, and the HSM liveness probe."""

    def __init__(self, token: Token, store: Store, clock: Clock, *, strict: bool = False, probe_interval_s: float = 1.0) -> None:
        self._token = token
        self._store = store
        self._clock = clock
        self.strict = strict
        self._probe_interval_s = probe_interval_s
        self._keys: dict[int, SealingKey] = {}
        self._macs: dict[int, IndexMac] = {}
        self._roles: dict[str, int] = {}
        self._erased: set[int] = set()
        self._destroyed: set[str] = set()
        self._kek_check = b""
        self._last_probe_s = float("-inf")
        self._sealed = True
        self._create_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Keyring(keys={len(self._keys) + len(self._macs)}, strict={self.strict}, sealed={self._sealed})"

    # -- start and stop -------------------------------------------------------------------------

    def open_blocking(self) -> None:
        """Check the token is the one this store was written with, then unwrap every data key."""
        try:
            check = self._token.check_value_blocking(KEK_LABEL)
            with self._store.read() as r:
                stored_check = r.get(layout.META, _KEK_CHECK)
                wrapped = [_DECODER.decode(v) for _, v in r.items(layout.KEYS)]
                roles = {k[len(_ROLE_PREFIX) :].decode(): layout.unpack_u32(v) for k, v in r.prefix(layout.META, _ROLE_PREFIX)}
                destroyed = {k[len(_DESTROYED_PREFIX) :].decode() for k, _ in r.prefix(layout.META, _DESTROYED_PREFIX)}
            if stored_check is None:
                self._store.write(lambda w: w.put(layout.META, _KEK_CHECK, check))
            elif stored_check != check:
                raise HsmUnavailable("HSM token holds a different KEK than the one this store was written with")
            self._kek_check = check
            self._destroyed = destroyed
            for wk in wrapped:
                if wk.wrapped_by in destroyed:
                    # Erased for good, even if a key of the same label was made again since.
                    self._erased.add(wk.key_id)
                else:
                    self._unwrap(wk)
            self._roles = roles
            self._sealed = False
            self._last_probe_s = self._clock.monotonic_s()
            for role, use in ((ROLE_IDENTITY, "seal"), (ROLE_INDEX, "mac"), (ROLE_OUTBOX, "seal")):
                if role not in self._roles:
                    self._create(KEK_LABEL, use, role=role)
        except HsmUnavailable:
            self.seal()
            raise

    def _unwrap(self, wk: WrappedKey) -> None:
        try:
            if self.strict:
                session_key = self._token.unwrap_session_key_blocking(wk.wrapped_by, wk.blob, wk.mechanism, use=wk.use)
                if wk.use == "seal":
                    self._keys[wk.key_id] = HsmSealingKey(wk.key_id, self._token, session_key, KEK_LABEL)
                else:
                    self._macs[wk.key_id] = HsmIndexMac(wk.key_id, self._token, session_key)
            else:
                secret = self._token.unwrap_secret_blocking(wk.wrapped_by, wk.blob, wk.mechanism)
                if wk.use == "seal":
                    self._keys[wk.key_id] = ProcessSealingKey(wk.key_id, secret)
                else:
                    self._macs[wk.key_id] = ProcessIndexMac(wk.key_id, secret)
        except HsmKeyMissing:
            if not wk.wrapped_by.startswith(EPOCH_PREFIX):
                raise HsmUnavailable("HSM token lacks the KEK that wraps the data keys") from None
            # Its epoch key was destroyed: what it encrypted is cryptographically erased.
            self._erased.add(wk.key_id)
        except HsmError:
            if not wk.wrapped_by.startswith(EPOCH_PREFIX) or self._token.lost:
                raise
            # A key of that label exists but is not the one that wrapped this data key: the original
            # was destroyed (a store restored from before the erase, then re-provisioned). Erased.
            log.warning("data key %d: its epoch key %s is not the original; treated as erased", wk.key_id, wk.wrapped_by, extra=event("keyring.epoch_erased"))
            self._erased.add(wk.key_id)

    def seal(self, *, reason: str | None = None) -> None:
        """Forget every unwrapped key; the identity file refuses personal data until restart.

        ``reason`` names an orderly seal (a stop), logged at INFO; without one the seal is a failure."""
        if not self._sealed:
            if reason is None:
                log.error("keyring sealed: personal data refused until restart", extra=event("keyring.sealed"))
            else:
                log.info("keyring sealed (%s)", reason, extra=event("keyring.sealed"))
        self._sealed = True
        self._keys.clear()
        self._macs.clear()

    @property
    def sealed(self) -> bool:
        """True when no personal data may be read or written."""
        return self._sealed

    # -- liveness -------------------------------------------------------------------------------

    def ensure_live(self) -> None:
        """Raise ``HsmUnavailable`` (and seal) unless the HSM answered a probe recently."""
        if self._sealed:
            raise HsmUnavailable("identity file is sealed: the HSM was lost or not opened")
        now_s = self._clock.monotonic_s()
        if now_s - self._last_probe_s < self._probe_interval_s:
            return
        self.probe_blocking()

    def probe_blocking(self) -> None:
        """One operation against the token KEK; any failure or a different KEK seals the keyring."""
        try:
            check = self._token.check_value_blocking(KEK_LABEL)
        except HsmError:
            self.seal()
            raise HsmUnavailable("HSM did not answer the liveness probe") from None
        if check != self._kek_check:
            self.seal()
            raise HsmUnavailable("HSM token's KEK changed while running")
        self._last_probe_s = self._clock.monotonic_s()

    # -- keys -------------------------------------------------------------------------------------

    def sealing_key(self, key_id: int) -> SealingKey:
        """The key a stored value names; ``InvalidCiphertext`` when unknown or erased."""
        key = self._keys.get(key_id)
        if key is None:
            if self._sealed:
                raise HsmUnavailable("identity file is sealed")
            key = self._load(key_id)
        return key

    def _load(self, key_id: int) -> SealingKey:
        """A data key written after this keyring opened (by another keyring, or a restore)."""
        with self._store.read() as r:
            value = r.get(layout.KEYS, layout.pack_u32(key_id))
        if value is None or key_id in self._erased:
            raise InvalidCiphertext()
        with self._create_lock:
            self._unwrap(_DECODER.decode(value))
        key = self._keys.get(key_id)
        if key is None:
            raise InvalidCiphertext()
        return key

    def identity_key(self) -> SealingKey:
        """The key current identity records are sealed with."""
        return self.sealing_key(self._role(ROLE_IDENTITY))

    def outbox_key(self) -> SealingKey:
        """The key outbox entries are sealed with."""
        return self.sealing_key(self._role(ROLE_OUTBOX))

    def index_mac(self) -> IndexMac:
        """The blind-index MAC."""
        if self._sealed:
            raise HsmUnavailable("identity file is sealed")
        return self._macs[self._role(ROLE_INDEX)]

    def epoch_key(self, retention_class: str, period: str, *, create: bool = True) -> SealingKey:
        """The data key of one retention epoch, created (epoch key in the HSM, data key wrapped) if new.

        Creating commits a write transaction of its own, so inside one pass ``create=False``.
        """
        role = f"epoch:{retention_class}:{period}"
        if role not in self._roles and create:
            with self._create_lock:
                if role not in self._roles:
                    label = epoch_label(retention_class, period)
                    if label in self._destroyed:
                        raise HsmKeyMissing(f"epoch {label} was destroyed; nothing may be sealed under it again")
                    if not self._token.has_key_blocking(label):
                        self._token.create_wrapping_key_blocking(label)
                    self._create(label, "seal", role=role)
        return self.sealing_key(self._role(role))

    def open_value(self, table: str, key: bytes, value: bytes) -> tuple[int, bytes]:
        """(version, plaintext) of a value stored by :func:`seal_value` at ``table``/``key``;
        ``InvalidCiphertext`` when it was moved, altered, or its data key is erased."""
        env = envelope.unpack(value)
        return env.version, self.sealing_key(env.key_id).open(env.sealed, envelope.aad(table, key, env.version, env.key_id))

    def epoch_periods(self, retention_class: str) -> list[str]:
        """The periods of ``retention_class`` that have a data key and are not yet erased."""
        prefix = f"epoch:{retention_class}:"
        return sorted(
            role[len(prefix) :] for role, key_id in self._roles.items() if role.startswith(prefix) and key_id not in self._erased
        )

    def destroy_epoch_blocking(self, retention_class: str, period: str) -> str:
        """Cryptographic erase (NIST SP 800-88 purge): destroy the epoch key in the HSM and forget
        its data key here, so every copy of what it sealed — backups and off-site media included —
        can never be opened again.  Idempotent; returns the token label destroyed."""
        self.ensure_live()
        label = epoch_label(retention_class, period)
        with self._create_lock:
            # Recorded first: if the process dies between the two steps, the next start treats the
            # epoch as erased and the next run destroys the key (idempotent).
            self._store.write(lambda w: w.put(layout.META, _DESTROYED_PREFIX + label.encode(), b""))
            self._destroyed.add(label)
            if self._token.has_key_blocking(label):
                self._token.destroy_key_blocking(label)
            key_id = self._roles.get(f"epoch:{retention_class}:{period}")
            if key_id is not None:
                self._erased.add(key_id)
                self._keys.pop(key_id, None)
        log.info("epoch key destroyed: %s", label, extra=event("keyring.epoch_destroyed"))
        return label

    def purge_destroyed_blocking(self) -> list[str]:
        """Destroy again any token key under a label recorded as destroyed (made anew by a
        re-provisioning): nothing may ever be sealed under an erased epoch's label."""
        purged = []
        with self._create_lock:
            for label in sorted(self._destroyed):
                if self._token.has_key_blocking(label):
                    self._token.destroy_key_blocking(label)
                    purged.append(label)
        return purged

    def erased(self, key_id: int) -> bool:
        """True when the key's epoch key is gone from the HSM (cryptographic erase)."""
        return key_id in self._erased

    def _role(self, role: str) -> int:
        try:
            return self._roles[role]
        except KeyError:
            raise HsmKeyMissing(f"no data key for role {role}") from None

    def _create(self, wrapping_label: str, use: str, *, role: str) -> None:
        """Generate a data key, wrap it, and commit it (and its role) before anything is sealed with it."""
        self.ensure_live()
        secret = self._token.random_blocking(SECRET_BYTES)
        blob = self._token.wrap_secret_blocking(wrapping_label, secret)
        del secret

        def store(w: Writer) -> WrappedKey:
            last = max((layout.unpack_u32(k) for k, _ in w.items(layout.KEYS)), default=0)
            wk = WrappedKey(last + 1, use, wrapping_label, WRAP_MECHANISM, blob, today_of(self._clock))
            w.put(layout.KEYS, layout.pack_u32(wk.key_id), _ENCODER.encode(wk))
            w.put(layout.META, _ROLE_PREFIX + role.encode(), layout.pack_u32(wk.key_id))
            return wk

        wk = self._store.write(store)
        self._unwrap(wk)
        self._roles[role] = wk.key_id
        log.info("data key created key_id=%d use=%s", wk.key_id, use, extra=event("keyring.data_key_created"))


def seal_value(key: SealingKey, table: str, at: bytes, version: int, plaintext: bytes) -> bytes:
    """The stored form of ``plaintext`` sealed by ``key``: bound to its table, key, version and key id
    (see ``storage.envelope``), so a copy anywhere else does not open."""
    return envelope.pack(key.key_id, version, key.seal(plaintext, envelope.aad(table, at, version, key.key_id)))


def open_worker_keyring(hsm_config: HsmConfig, store_path: Path, *, strict: bool) -> tuple[Store, Keyring, Clock]:
    """A worker process's own store handle and keyring, logged in to the token itself (a login is
    per process and no key ever crosses a process): for the bulk load's and the check data's workers."""
    clock = SystemClock()
    store = Store(store_path)
    keyring = Keyring(open_token(hsm_config), store, clock, strict=strict)
    keyring.open_blocking()
    return store, keyring, clock
