"""Off-site copies of a backup: the backup directory sealed to a configured recipient's X25519 key.

A backup is already encrypted under HSM-wrapped keys; the off-site layer adds that media carried
out of the machine room opens only with the recipient's private key, and that any change to it
is detected before anything is restored.

File: header = magic (8) ‖ version (1) ‖ chunk size (4, big-endian) ‖ ephemeral X25519 public key
(32).  The key is HKDF-SHA256 over the ephemeral-static shared secret (info binds the header and
the recipient's public key).  Then the sealed chunks: AES-256-GCM, each ``chunk size`` bytes of
plaintext (the last one shorter or equal, never absent), nonce = 0³ ‖ chunk counter (8) ‖ last
flag (1), the header as associated data.  A changed byte, a chunk moved, dropped or appended, or
a cut at a chunk boundary each fail authentication (the STREAM construction).

The plaintext is a small archive of the backup's files: per file ``F`` ‖ name length (2) ‖ name ‖
size (8) ‖ bytes, then ``E``.  Both directions stream through one chunk at a time: memory stays
bounded whatever the size of the store.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from firmware_app.service.backup import BACKUP_FILES
from firmware_app.service.backup_files import fsync_dir, is_empty_dir, publish_dir, temporary_sibling
from firmware_app.service.backup_manifest import BackupError, BackupRejected

__all__ = [
    "CHUNK_BYTES",
    "generate_recipient_keypair",
    "open_offsite_blocking",
    "open_parts_blocking",
    "seal_offsite_blocking",
    "seal_parts_blocking",
]

MAGIC = b"CSOFFSIT"
EXPORT_MAGIC = b"CSEXPORT"
#: The largest part of an export (a check-data chunk is ~140 KB; a report a few MB).
MAX_PART_BYTES = 64 * 1024 * 1024
VERSION = 1
CHUNK_BYTES = 1024 * 1024
MIN_CHUNK_BYTES = 4096
MAX_CHUNK_BYTES = 16 * 1024 * 1024
_HEADER = struct.Struct(">8sBI32s")
_TAG_BYTES = 16
_INFO = b"cs-appliance offsite v1"
_NAME = struct.Struct(">H")
_SIZE = struct.Struct(">Q")


def generate_recipient_keypair() -> tuple[bytes, bytes]:
    """A recipient key pair (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM), for demos and tests:
    in production the recipient's private key is made and kept off the appliance."""
    private = X25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem


def seal_offsite_blocking(backup_dir: Path, recipient_public_key_pem: bytes, out_file: Path, *, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Seal the backup in ``backup_dir`` into ``out_file`` (created 0600, must not exist); returns its size.

    The backup is not verified here (that needs the CS public key; ``cs-backup`` verifies first):
    the seal carries whatever the directory holds, and the restore verifies after opening.
    """
    for name in BACKUP_FILES:
        if not (backup_dir / name).is_file():
            raise BackupRejected(f"backup is missing {name}")
    return _seal_stream(MAGIC, _archive(backup_dir), recipient_public_key_pem, out_file, chunk_bytes)


def seal_parts_blocking(parts: Iterable[tuple[str, bytes]], recipient_public_key_pem: bytes, out_file: Path, *, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Seal named in-memory parts (an export of personal data) to the recipient, in the same
    construction as an off-site backup but its own magic; ``out_file`` is created 0600 and must not
    exist.  Parts are consumed one at a time, so a long export never sits whole in memory."""
    return _seal_stream(EXPORT_MAGIC, _parts_archive(parts), recipient_public_key_pem, out_file, chunk_bytes)


def open_parts_blocking(sealed_file: Path, recipient_private_key_pem: bytes) -> list[tuple[str, bytes]]:
    """The named parts of a sealed export (the recipient's side, off the appliance; and tests)."""
    with open(sealed_file, "rb", buffering=0) as f:
        stream = _PlainStream(f, _load_private(recipient_private_key_pem), magic=EXPORT_MAGIC)
        parts = []
        while (tag := stream.read(1)) == b"F":
            (name_len,) = _NAME.unpack(stream.read(_NAME.size))
            name = stream.read(name_len).decode("utf-8", "replace")
            (size_bytes,) = _SIZE.unpack(stream.read(_SIZE.size))
            if size_bytes > MAX_PART_BYTES:
                raise BackupRejected("export archive is malformed (part too large)")
            parts.append((name, stream.read(size_bytes)))
        if tag != b"E" or not stream.at_end():
            raise BackupRejected("export archive is malformed (entry tag or data after its end)")
    return parts


def _seal_stream(magic: bytes, pieces: Iterator[bytes], recipient_public_key_pem: bytes, out_file: Path, chunk_bytes: int) -> int:
    if not MIN_CHUNK_BYTES <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError("chunk size out of range")
    recipient = _load_public(recipient_public_key_pem)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    header = _HEADER.pack(magic, VERSION, chunk_bytes, ephemeral_raw)
    aead = AESGCM(_derive_key(ephemeral.exchange(recipient), header, recipient))
    tmp = out_file.with_name(f".{out_file.name}.partial-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            _write_chunks(f, aead, header, chunk_bytes, pieces)
            os.fsync(f.fileno())
        if out_file.exists():
            raise BackupError("output file exists already")
        os.rename(tmp, out_file)
        fsync_dir(out_file.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out_file.stat().st_size


def _parts_archive(parts: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    for name, data in parts:
        encoded = name.encode("utf-8")
        if len(data) > MAX_PART_BYTES:
            raise BackupError("export part too large")
        yield b"F" + _NAME.pack(len(encoded)) + encoded + _SIZE.pack(len(data))
        yield data
    yield b"E"


def open_offsite_blocking(sealed_file: Path, recipient_private_key_pem: bytes, out_dir: Path) -> list[str]:
    """Open an off-site file into ``out_dir`` (absent or empty); returns the names of the files written.

    Everything is authenticated before ``out_dir`` appears: the files are written into a temporary
    sibling and renamed into place only after the last chunk opened.  Verify the result with
    ``verify_backup`` (or let the restore do it) before trusting it as the CS's backup.
    """
    if not is_empty_dir(out_dir):
        raise BackupError("off-site output directory is not empty")
    private = _load_private(recipient_private_key_pem)
    tmp = temporary_sibling(out_dir, "offsite")
    try:
        with open(sealed_file, "rb", buffering=0) as f:
            stream = _PlainStream(f, private)
            names = _unarchive(stream, tmp)
        publish_dir(tmp, out_dir)
        return names
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _load_public(pem: bytes) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise BackupError("recipient public key is not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise BackupError("recipient public key must be an X25519 key")
    return key


def _load_private(pem: bytes) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise BackupError("recipient private key is not an unencrypted PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise BackupError("recipient private key must be an X25519 key")
    return key


def _derive_key(shared: bytes, header: bytes, recipient: X25519PublicKey) -> bytes:
    recipient_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return HKDF(hashes.SHA256(), 32, salt=None, info=_INFO + header + recipient_raw).derive(shared)


def _nonce(counter: int, last: bool) -> bytes:
    return b"\0\0\0" + counter.to_bytes(8, "big") + (b"\1" if last else b"\0")


def _archive(backup_dir: Path) -> Iterator[bytes]:
    """The plaintext archive of the backup's files, a buffer at a time."""
    for name in BACKUP_FILES:
        path = backup_dir / name
        encoded = name.encode("ascii")
        with open(path, "rb", buffering=0) as f:
            size_bytes = os.fstat(f.fileno()).st_size
            yield b"F" + _NAME.pack(len(encoded)) + encoded + _SIZE.pack(size_bytes)
            remaining = size_bytes
            while remaining:
                piece = f.read(min(CHUNK_BYTES, remaining))
                if not piece:
                    raise BackupError(f"{name} shrank while being sealed")
                remaining -= len(piece)
                yield piece
    yield b"E"


def _write_chunks(f: BinaryIO, aead: AESGCM, header: bytes, chunk_bytes: int, pieces: Iterator[bytes]) -> None:
    """Seal the plaintext pieces as chunks; the final chunk (possibly full or empty) is marked last."""
    buffer = bytearray()
    counter = 0
    for piece in pieces:
        buffer += piece
        # Keep at least one byte back: only the final chunk may be marked last.
        while len(buffer) > chunk_bytes:
            f.write(aead.encrypt(_nonce(counter, False), bytes(buffer[:chunk_bytes]), header))
            del buffer[:chunk_bytes]
            counter += 1
    f.write(aead.encrypt(_nonce(counter, True), bytes(buffer), header))


class _PlainStream:
    """The authenticated plaintext of an off-site file, read in order; refuses what does not open."""

    def __init__(self, f: BinaryIO, private: X25519PrivateKey, *, magic: bytes = MAGIC) -> None:
        header = f.read(_HEADER.size)
        if len(header) != _HEADER.size:
            raise BackupRejected("off-site file is too short for its header")
        expected_magic = magic
        magic, version, chunk_bytes, ephemeral_raw = _HEADER.unpack(header)
        if magic != expected_magic:
            raise BackupRejected("off-site file header is malformed (not an off-site backup)")
        if version != VERSION:
            raise BackupRejected(f"off-site file version {version} is not one this software reads")
        if not MIN_CHUNK_BYTES <= chunk_bytes <= MAX_CHUNK_BYTES:
            raise BackupRejected("off-site file header is malformed (chunk size)")
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        except ValueError:
            raise BackupRejected("off-site file header is malformed (ephemeral key)") from None
        self._aead = AESGCM(_derive_key(shared, header, private.public_key()))
        self._f = f
        self._header = header
        self._sealed_bytes = chunk_bytes + _TAG_BYTES
        self._counter = 0
        self._next = f.read(self._sealed_bytes)
        self._done = False
        self._buffer = bytearray()

    def _open_next(self) -> None:
        sealed = self._next
        self._next = self._f.read(self._sealed_bytes)
        last = not self._next
        try:
            plain = self._aead.decrypt(_nonce(self._counter, last), sealed, self._header)
        except InvalidTag:
            raise BackupRejected(self._why(sealed, last)) from None
        self._buffer += plain
        self._counter += 1
        self._done = last

    def _why(self, sealed: bytes, last: bool) -> str:
        if last and len(sealed) == self._sealed_bytes:
            try:
                self._aead.decrypt(_nonce(self._counter, False), sealed, self._header)
                return "off-site file is truncated"
            except InvalidTag:
                pass
        if self._counter == 0:
            return "off-site file does not open: wrong recipient key, or its header or first chunk was altered"
        if last and len(sealed) < _TAG_BYTES:
            return "off-site file is truncated"
        return f"off-site chunk {self._counter} does not authenticate (altered, reordered or truncated)"

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes of plaintext; the archive is malformed if it ends first."""
        while len(self._buffer) < n:
            if self._done:
                raise BackupRejected("off-site archive is malformed (ends early)")
            self._open_next()
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def at_end(self) -> bool:
        """True when every chunk is open and every byte read."""
        while not self._buffer and not self._done:
            self._open_next()
        return self._done and not self._buffer


def _unarchive(stream: _PlainStream, out_dir: Path) -> list[str]:
    """Write the archive's files into ``out_dir``: only the backup's own names, each once."""
    names: list[str] = []
    while True:
        tag = stream.read(1)
        if tag == b"E":
            break
        if tag != b"F":
            raise BackupRejected("off-site archive is malformed (entry tag)")
        (name_len,) = _NAME.unpack(stream.read(_NAME.size))
        name = stream.read(name_len).decode("ascii", "replace")
        if name not in BACKUP_FILES or name in names:
            raise BackupRejected("off-site archive is malformed (unexpected file name)")
        (size_bytes,) = _SIZE.unpack(stream.read(_SIZE.size))
        fd = os.open(out_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            remaining = size_bytes
            while remaining:
                piece = stream.read(min(CHUNK_BYTES, remaining))
                f.write(piece)
                remaining -= len(piece)
            os.fsync(f.fileno())
        names.append(name)
    if not stream.at_end():
        raise BackupRejected("off-site archive is malformed (data after its end)")
    if sorted(names) != sorted(BACKUP_FILES):
        raise BackupRejected("off-site archive is malformed (a backup file is missing)")
    return names
