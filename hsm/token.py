"""The one adapter over python-pkcs11: a logged-in token and the operations the appliance needs.

What python-pkcs11 0.10 and SoftHSM 2.6 really do (shared/reference/crypto-storage.md §1) shapes it:
- two threads in two sessions corrupt memory, so one process-wide lock serialises every call;
- login is per process, so one ``Token`` holds the only login session for its life;
- a GCM tag failure is CKR_GENERAL_ERROR, like a device fault, so it is told apart by a probe;
- a vanished token shows as invalid handles, general errors or empty look-ups: all "token lost",
  after which this object refuses everything (fail closed) until the process restarts;
- SoftHSM's 0x210A is RFC 5649, not the standard's pad mechanism, so 32-byte secrets are wrapped
  with CKM_AES_KEY_WRAP (RFC 3394), whose name is stored beside every blob.
Every method blocks; call it from a worker thread, never on the event loop.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as px
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from hsm.errors import (
    HsmError,
    HsmKeyMissing,
    HsmLoginFailed,
    HsmPinLocked,
    HsmUnavailable,
    InvalidCiphertext,
    InvalidSignature,
)

#: Name stored beside every wrapped blob; the only mechanism this adapter wraps with.
WRAP_MECHANISM = "CKM_AES_KEY_WRAP"
_WRAP_MECHANISMS = {WRAP_MECHANISM: Mechanism.AES_KEY_WRAP}

#: Secrets wrapped here are whole AES-256 or HMAC keys: a multiple of 8 bytes, as SoftHSM needs.
SECRET_BYTES = 32

_CHECK_SECRET = bytes(SECRET_BYTES)

# One lock for every PKCS#11 call in the process (see the module docstring).
_LOCK = threading.RLock()

# Errors that mean the token, a session or a key we hold has gone away.
_LOST = (
    px.ObjectHandleInvalid,
    px.KeyHandleInvalid,
    px.SessionHandleInvalid,
    px.SessionClosed,
    px.DeviceRemoved,
    px.DeviceError,
    px.TokenNotPresent,
    px.TokenNotRecognised,
    px.UnwrappingKeyHandleInvalid,
    px.WrappingKeyHandleInvalid,
    px.GeneralError,
    px.UserNotLoggedIn,
)


class SessionKey:
    """A key that lives only inside the HSM session (strict mode); opaque to callers."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def __repr__(self) -> str:
        return "SessionKey(<in HSM>)"


class Token:
    """One logged-in PKCS#11 token; the process's only login session."""

    def __init__(self, session: Any, token_label: str, slot: Any = None) -> None:
        self._session = session
        self._slot = slot
        self.token_label = token_label
        self._lost = False
        self._keys: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"Token(label={self.token_label!r}, lost={self._lost})"

    # -- life cycle -----------------------------------------------------------------------

    @classmethod
    def open_blocking(cls, module_path: str, token_label: str, pin: str) -> Token:
        """Load the module, find the token and log in; every failure is a clear ``HsmError``."""
        with _LOCK:
            try:
                lib = pkcs11.lib(module_path)
            except px.PKCS11Error:
                raise HsmUnavailable("PKCS#11 module could not be loaded") from None
            try:
                token = lib.get_token(token_label=token_label)
            except px.NoSuchToken:
                raise HsmUnavailable("HSM token not found") from None
            except px.MultipleTokensReturned:
                raise HsmUnavailable("more than one HSM token has that label") from None
            except px.PKCS11Error as exc:
                raise HsmUnavailable(f"HSM slot list unreadable ({type(exc).__name__})") from None
            if token.flags & TokenFlag.USER_PIN_LOCKED:
                raise HsmPinLocked("HSM user PIN is locked; the security officer must reset it")
            try:
                session = token.open(rw=True, user_pin=pin)
            except px.PinIncorrect:
                raise HsmLoginFailed("HSM refused the PIN") from None
            except (px.PinLocked, px.PinExpired):
                raise HsmPinLocked("HSM user PIN is locked or expired") from None
            except (px.PinLenRange, px.PinInvalid):
                raise HsmLoginFailed("HSM PIN has an invalid form") from None
            except px.UserAlreadyLoggedIn:
                raise HsmUnavailable("HSM token is already logged in by this process") from None
            except px.PKCS11Error as exc:
                raise HsmUnavailable(f"HSM login failed ({type(exc).__name__})") from None
        return cls(session, token_label, token.slot)

    def close_blocking(self) -> None:
        """Log out and close the session; harmless when already lost or closed."""
        with _LOCK:
            self._keys.clear()
            session, self._session = self._session, None
            if session is not None:
                try:
                    session.close()
                except px.PKCS11Error:
                    pass  # A lost token cannot be logged out of; the process state is dropped anyway.
            self._lost = True

    @property
    def lost(self) -> bool:
        """True once the token was lost or closed: nothing more is done through it."""
        return self._lost

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        if self._lost:
            raise HsmUnavailable("HSM token is not available")
        with _LOCK:
            try:
                yield
            except _LOST as exc:
                self._lost = True
                raise HsmUnavailable(f"HSM token lost during {what} ({type(exc).__name__})") from None
            except px.PKCS11Error as exc:
                raise HsmError(f"HSM refused {what} ({type(exc).__name__})") from None

    # -- keys in the token ------------------------------------------------------------------

    def _key(self, label: str, object_class: ObjectClass = ObjectClass.SECRET_KEY) -> Any:
        cache_label = f"{object_class.name}:{label}"
        key = self._keys.get(cache_label)
        if key is None:
            try:
                key = self._session.get_key(object_class=object_class, label=label)
            except px.NoSuchKey:
                # A vanished token answers look-ups with nothing, like a missing key: tell them apart.
                if not self._token_present():
                    self._lost = True
                    raise HsmUnavailable("HSM token lost during key look-up") from None
                raise HsmKeyMissing(f"HSM key {label!r} is not in the token") from None
            except px.MultipleObjectsReturned:
                raise HsmKeyMissing(f"HSM key {label!r} is ambiguous") from None
            self._keys[cache_label] = key
        return key

    def _token_present(self) -> bool:
        """Ask the slot for its token's info afresh (a removed token answers with an error)."""
        if self._slot is None:
            return True
        try:
            self._slot.get_token()
        except px.PKCS11Error:
            return False
        return True

    def has_key_blocking(self, label: str, object_class: ObjectClass = ObjectClass.SECRET_KEY) -> bool:
        """True when the token holds a key with this label."""
        with self._call("key look-up"):
            try:
                self._key(label, object_class)
            except HsmKeyMissing:
                return False
            return True

    def create_wrapping_key_blocking(self, label: str) -> None:
        """A non-extractable, sensitive AES-256 token key that only wraps and unwraps (KEK, epoch keys)."""
        with self._call("key generation"):
            if list(self._session.get_objects({Attribute.LABEL: label})):
                raise HsmError(f"HSM key {label!r} exists already")
            self._session.generate_key(
                KeyType.AES,
                256,
                label=label,
                store=True,
                template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.WRAP: True,
                    Attribute.UNWRAP: True,
                    Attribute.ENCRYPT: False,
                    Attribute.DECRYPT: False,
                    Attribute.SIGN: False,
                    Attribute.VERIFY: False,
                    Attribute.MODIFIABLE: False,
                    Attribute.DESTROYABLE: True,
                },
            )

    def create_signing_key_blocking(self, label: str) -> None:
        """A P-256 key pair in the token; the private half is sensitive and non-extractable."""
        with self._call("key-pair generation"):
            if list(self._session.get_objects({Attribute.LABEL: label})):
                raise HsmError(f"HSM key {label!r} exists already")
            params = self._session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
            )
            params.generate_keypair(
                store=True,
                label=label,
                public_template={Attribute.TOKEN: True, Attribute.VERIFY: True},
                private_template={
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: True,
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.DERIVE: False,
                },
            )

    def destroy_key_blocking(self, label: str) -> None:
        """Destroy a token secret key (an epoch key at the end of its period)."""
        with self._call("key destruction"):
            key = self._key(label)
            key.destroy()
            self._keys.pop(f"{ObjectClass.SECRET_KEY.name}:{label}", None)

    def key_labels_blocking(self, prefix: str) -> list[str]:
        """Labels of the token's secret keys that start with ``prefix``, sorted."""
        with self._call("key listing"):
            objs = self._session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
            labels = [o.label for o in objs]
        return sorted(label for label in labels if label.startswith(prefix))

    # -- random, wrap, unwrap ------------------------------------------------------------------

    def random_blocking(self, n_bytes: int) -> bytes:
        """Random bytes from the HSM's generator."""
        with self._call("random generation"):
            return bytes(self._session.generate_random(n_bytes * 8))

    def wrap_secret_blocking(self, wrapping_label: str, secret: bytes) -> bytes:
        """Wrap a 32-byte secret under a token key (RFC 3394); the secret is a transient session object."""
        if len(secret) != SECRET_BYTES:
            raise ValueError("only 32-byte secrets are wrapped")
        with self._call("key wrapping"):
            wrapping = self._key(wrapping_label)
            obj = self._session.create_object(
                {
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                    Attribute.TOKEN: False,
                    Attribute.SENSITIVE: False,
                    Attribute.EXTRACTABLE: True,
                    Attribute.VALUE: secret,
                }
            )
            try:
                return bytes(wrapping.wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP))
            finally:
                obj.destroy()

    def unwrap_secret_blocking(self, wrapping_label: str, blob: bytes, mechanism: str) -> bytes:
        """Unwrap a blob into process memory (the secret passes through a transient session object)."""
        mech = _wrap_mechanism(mechanism)
        with self._call("key unwrapping"):
            obj = self._unwrap(wrapping_label, blob, mech, KeyType.GENERIC_SECRET, exportable=True)
            try:
                value = bytes(obj[Attribute.VALUE])
            finally:
                obj.destroy()
        if len(value) != SECRET_BYTES:
            raise HsmError("unwrapped secret has the wrong length")
        return value

    def unwrap_session_key_blocking(self, wrapping_label: str, blob: bytes, mechanism: str, *, use: str) -> SessionKey:
        """Unwrap a blob into a sensitive session key that never leaves the HSM (strict mode).

        ``use`` is ``"seal"`` (AES-GCM) or ``"mac"`` (HMAC-SHA256).
        """
        mech = _wrap_mechanism(mechanism)
        key_type = {"seal": KeyType.AES, "mac": KeyType.GENERIC_SECRET}[use]
        with self._call("key unwrapping"):
            return SessionKey(self._unwrap(wrapping_label, blob, mech, key_type, exportable=False, use=use))

    def _unwrap(
        self, wrapping_label: str, blob: bytes, mech: Mechanism, key_type: KeyType, *, exportable: bool, use: str = ""
    ) -> Any:
        wrapping = self._key(wrapping_label)
        template = {
            Attribute.TOKEN: False,
            Attribute.SENSITIVE: not exportable,
            Attribute.EXTRACTABLE: exportable,
            Attribute.ENCRYPT: use == "seal",
            Attribute.DECRYPT: use == "seal",
            Attribute.SIGN: use == "mac",
            Attribute.VERIFY: use == "mac",
        }
        try:
            return wrapping.unwrap_key(ObjectClass.SECRET_KEY, key_type, blob, mechanism=mech, store=False, template=template)
        except (px.WrappedKeyInvalid, px.WrappedKeyLenRange, px.EncryptedDataInvalid):
            raise HsmError("wrapped key did not unwrap") from None
        except px.GeneralError:
            pass
        # SoftHSM reports a failed RFC 3394 integrity check as CKR_GENERAL_ERROR, like a device
        # fault: a probe of the same wrapping key tells a damaged blob from a lost token.
        self.check_value_blocking(wrapping_label)
        raise HsmError("wrapped key did not unwrap")

    def check_value_blocking(self, wrapping_label: str) -> bytes:
        """A fingerprint of a wrapping key: the deterministic RFC 3394 wrap of a fixed all-zero secret."""
        return self.wrap_secret_blocking(wrapping_label, _CHECK_SECRET)

    # -- strict-mode operations on session keys ------------------------------------------------------

    def gcm_encrypt_blocking(self, key: SessionKey, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """AES-256-GCM inside the HSM; returns ciphertext‖tag."""
        with self._call("encryption"):
            return bytes(key._obj.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=pkcs11.GCMParams(nonce, aad)))

    def gcm_decrypt_blocking(self, key: SessionKey, nonce: bytes, ciphertext: bytes, aad: bytes, *, probe_label: str) -> bytes:
        """AES-256-GCM decryption inside the HSM.

        SoftHSM answers a tag failure with CKR_GENERAL_ERROR, the same as a device fault; a probe
        against the token key ``probe_label`` tells them apart.
        """
        if self._lost:
            raise HsmUnavailable("HSM token is not available")
        with _LOCK:
            try:
                return bytes(key._obj.decrypt(ciphertext, mechanism=Mechanism.AES_GCM, mechanism_param=pkcs11.GCMParams(nonce, aad)))
            except (px.GeneralError, px.EncryptedDataInvalid, px.EncryptedDataLenRange):
                pass
            except px.PKCS11Error as exc:
                if isinstance(exc, _LOST):
                    self._lost = True
                raise HsmUnavailable(f"HSM decryption failed ({type(exc).__name__})") from None
        self.check_value_blocking(probe_label)  # raises HsmUnavailable when the token is gone
        raise InvalidCiphertext()

    def hmac_blocking(self, key: SessionKey, data: bytes) -> bytes:
        """HMAC-SHA256 inside the HSM."""
        with self._call("MAC"):
            return bytes(key._obj.sign(data, mechanism=Mechanism.SHA256_HMAC))

    # -- signatures ------------------------------------------------------------------------------

    def sign_blocking(self, label: str, data: bytes) -> bytes:
        """ECDSA P-256 over SHA-256(data), as raw r‖s (SoftHSM has no CKM_ECDSA_SHA256)."""
        digest = hashlib.sha256(data).digest()
        with self._call("signing"):
            return bytes(self._key(label, ObjectClass.PRIVATE_KEY).sign(digest, mechanism=Mechanism.ECDSA))

    def verify_blocking(self, label: str, data: bytes, signature: bytes) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` is ours over ``data``."""
        digest = hashlib.sha256(data).digest()
        with self._call("verification"):
            try:
                ok = self._key(label, ObjectClass.PUBLIC_KEY).verify(digest, signature, mechanism=Mechanism.ECDSA)
            except (px.SignatureInvalid, px.SignatureLenRange):
                ok = False
        if not ok:
            raise InvalidSignature()

    def public_key_der_blocking(self, label: str) -> bytes:
        """The signing key's public half as DER SubjectPublicKeyInfo, for peers and auditors."""
        with self._call("public key export"):
            return bytes(encode_ec_public_key(self._key(label, ObjectClass.PUBLIC_KEY)))


def _wrap_mechanism(name: str) -> Mechanism:
    try:
        return _WRAP_MECHANISMS[name]
    except KeyError:
        raise HsmError("unknown key-wrap mechanism") from None
