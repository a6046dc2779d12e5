"""Backups of the store: a consistent copy with a manifest signed by the HSM key; and the
verification and restore of one.

The copy is LMDB's own (one read transaction), so it is a committed state even while ``csd``
keeps writing in another process, and what it holds stays as encrypted as the store: data keys
are wrapped by the KEK or epoch keys that never leave the HSM, so destroying an epoch key erases
that data in every backup too.  A restore brings a node back to exactly the backed-up state,
including the register's inbox cursor and the outbox cursors; the register then resends from the
restored cursor and the CS catches up by sequence.

A backup directory holds ``data.mdb`` (0600), ``manifest.json`` and ``manifest.sig`` (raw r‖s
ECDSA P-256 over a context string and the manifest's bytes), in a 0700 directory.  This module is
the service behind ``cs-backup`` (and later ``csctl backup``); everything here is blocking.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec

from firmware_app.clock import Clock
from firmware_app.service.backup_files import (
    copy_and_hash,
    exchange_or_replace,
    fsync_dir,
    fsync_file,
    hash_file,
    is_empty_dir,
    publish_dir,
    temporary_sibling,
    write_private_file,
)
from firmware_app.service.backup_manifest import (
    FORMAT_VERSION,
    BackupError,
    BackupRejected,
    Manifest,
    decode_manifest,
    encode_manifest,
    signed_bytes,
    summarize,
    verify_signature,
)
from hsm.keys import Signer
from storage.errors import CorruptValue, StorageError
from storage.store import Store, read_copy, store_in_use

__all__ = [
    "DATA_FILE",
    "MANIFEST_FILE",
    "SIGNATURE_FILE",
    "BackupError",
    "BackupRejected",
    "Manifest",
    "backup_blocking",
    "restore_blocking",
    "verify_backup",
]

DATA_FILE = "data.mdb"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
BACKUP_FILES = (MANIFEST_FILE, SIGNATURE_FILE, DATA_FILE)
#: A manifest is a few kilobytes; anything far larger is not one (and is not read whole).
MAX_MANIFEST_BYTES = 1024 * 1024


def backup_blocking(store: Store, signer: Signer, out_dir: Path, *, clock: Clock, note: str = "") -> Manifest:
    """Write a signed backup of ``store`` into ``out_dir`` (absent or empty) and return its manifest.

    The backup is assembled in a temporary sibling directory and renamed to ``out_dir`` only when
    complete and durable, so ``out_dir`` never holds a partial backup.
    """
    if not is_empty_dir(out_dir):
        raise BackupError("backup directory is not empty")
    tmp = temporary_sibling(out_dir, "backup")
    try:
        try:
            store.copy_to(tmp)
            with read_copy(tmp) as r:
                summary = summarize(r)  # of the copy itself: the live store has moved on
        except StorageError as exc:
            raise BackupError(f"store copy failed: {exc}") from None
        data = tmp / DATA_FILE
        data.chmod(0o600)
        size_bytes, sha256 = hash_file(data)
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            created_at=clock.now().isoformat(),
            note=note,
            data_file=DATA_FILE,
            data_size_bytes=size_bytes,
            data_sha256=sha256,
            store=summary,
        )
        manifest_bytes = encode_manifest(manifest)
        signature = signer.sign(signed_bytes(manifest_bytes))
        fsync_file(data)
        write_private_file(tmp / MANIFEST_FILE, manifest_bytes)
        write_private_file(tmp / SIGNATURE_FILE, signature)
        publish_dir(tmp, out_dir)
        return manifest
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def verify_backup(backup_dir: Path, public_key_der: bytes) -> Manifest:
    """The backup's manifest once its signature, the data file's size and digest, and what the data
    file holds (entries per database, cursors, keys) all agree; else ``BackupRejected`` naming what."""
    manifest = _verified_manifest(backup_dir, public_key_der)
    size_bytes, sha256 = hash_file(backup_dir / DATA_FILE)
    _check_data(manifest, size_bytes, sha256)
    _check_content(manifest, backup_dir)
    return manifest


def restore_blocking(backup_dir: Path, target_path: Path, public_key_der: bytes, *, force: bool = False) -> Manifest:
    """Verify the backup and make ``target_path`` (a store directory) exactly the backed-up store.

    The daemon must be stopped: a store another process has open is refused, force or not.  An
    existing non-empty store is replaced only with ``force``.  The data is copied (and hashed in
    the same pass) into a temporary sibling directory, checked against the manifest, fsynced, and
    swapped into place; on any failure the temporary directory is removed and the target is
    untouched.
    """
    if target_path.exists() and store_in_use(target_path):
        raise BackupError("the store is open in another process: stop csd before a restore")
    if not force and not is_empty_dir(target_path):
        raise BackupError("restore target is not empty (force replaces it)")
    manifest = _verified_manifest(backup_dir, public_key_der)
    tmp = temporary_sibling(target_path, "restore")
    try:
        size_bytes, sha256 = copy_and_hash(backup_dir / DATA_FILE, tmp / DATA_FILE)
        _check_data(manifest, size_bytes, sha256)
        _check_content(manifest, tmp)
        fsync_dir(tmp)
        exchange_or_replace(tmp, target_path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest


def _verified_manifest(backup_dir: Path, public_key_der: bytes) -> Manifest:
    """Files present, signature good, manifest well formed (the data file is not read here)."""
    if not backup_dir.is_dir():
        raise BackupRejected("backup directory does not exist")
    for name in BACKUP_FILES:
        if not (backup_dir / name).is_file():
            raise BackupRejected(f"backup is missing {name}")
    manifest_path = backup_dir / MANIFEST_FILE
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BackupRejected("manifest is malformed (too large)")
    manifest_bytes = manifest_path.read_bytes()
    signature = (backup_dir / SIGNATURE_FILE).read_bytes()[: MAX_MANIFEST_BYTES]
    verify_signature(manifest_bytes, signature, public_key_der)
    manifest = decode_manifest(manifest_bytes)
    if manifest.data_file != DATA_FILE:
        raise BackupRejected("manifest is malformed (data file name)")
    return manifest


def _check_data(manifest: Manifest, size_bytes: int, sha256: str) -> None:
    if size_bytes != manifest.data_size_bytes:
        raise BackupRejected(f"data file size {size_bytes} bytes does not match the manifest's {manifest.data_size_bytes}")
    if sha256 != manifest.data_sha256:
        raise BackupRejected("data file digest does not match the manifest")


def _check_content(manifest: Manifest, env_dir: Path) -> None:
    """The data file, opened read-only, holds what the manifest says (a backup made wrongly, or a
    digest that was right for the wrong file, is caught here)."""
    try:
        with read_copy(env_dir) as r:
            summary = summarize(r)
    except StorageError:
        raise BackupRejected("data file is not a readable store") from None
    except (CorruptValue, msgspec.DecodeError, msgspec.ValidationError, UnicodeError):
        raise BackupRejected("data file content is malformed") from None
    if summary != manifest.store:
        differing = sorted(
            name for name in ("schema_version", "entries", "inbox", "outbox_cursors", "keys", "kek_check_sha256")
            if getattr(summary, name) != getattr(manifest.store, name)
        )
        raise BackupRejected(f"data file content does not match the manifest ({', '.join(differing)})")
