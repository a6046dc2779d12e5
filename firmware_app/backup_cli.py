"""``cs-backup``: back up, verify, restore and seal off-site copies of the CS store.

An administrative command run on the appliance by the system operator, like ``cs-provision``.
The operator console's ``csctl backup`` (issue 5, over the daemon's Unix socket with operator
login) will front the same service (``firmware_app.service.backup`` and ``.offsite``).

    cs-backup --config csd.toml backup --out DIR [--note TEXT]
    cs-backup verify DIR --public-key FILE
    cs-backup --config csd.toml restore DIR --public-key FILE [--force]
    cs-backup seal-offsite DIR --recipient PEM --out FILE [--public-key FILE]
    cs-backup open-offsite FILE --key PEM --out DIR
    cs-backup keygen-offsite --out-private FILE --out-public FILE

``backup`` runs while ``csd`` runs (LMDB copies from one read transaction; this process logs in to
the HSM itself to sign the manifest).  ``restore`` needs ``csd`` stopped: a store another process
has open is refused.  After a restore, start ``csd``: the register resends from the restored inbox
cursor and the CS catches up by sequence.  Exit 0 on success, 1 with a one-line message otherwise;
nothing personal is printed (there is no plaintext personal data in a backup to print).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware_app.clock import SystemClock
from firmware_app.config import Config, ConfigError, load_config
from firmware_app.service.backup import (
    Manifest,
    backup_blocking,
    restore_blocking,
    verify_backup,
)
from firmware_app.service.backup_files import write_private_file
from firmware_app.service.backup_manifest import BackupError
from firmware_app.service.offsite import (
    generate_recipient_keypair,
    open_offsite_blocking,
    seal_offsite_blocking,
)
from hsm.config import open_token
from hsm.errors import HsmError
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from storage import layout
from storage.errors import StorageError
from storage.store import Store

PROG = "cs-backup"


def _describe(manifest: Manifest) -> str:
    return (
        f"{manifest.data_size_bytes:,} bytes, {manifest.store.entries.get(layout.IDENTITY, 0):,} residents, "
        f"{len(manifest.store.keys)} keys, created {manifest.created_at}, sha256 {manifest.data_sha256[:16]}…"
    )


def _config_of(args: argparse.Namespace) -> Config:
    if args.config is None:
        raise BackupError(f"--config is required for {args.command}")
    return load_config(args.config)


def _backup(args: argparse.Namespace) -> str:
    config = _config_of(args)
    if not (config.store_path / "data.mdb").is_file():
        raise BackupError("there is no store at the configured path")
    token = open_token(config.hsm)
    try:
        store = Store(config.store_path, map_size_bytes=config.map_size_bytes)
        try:
            manifest = backup_blocking(store, Signer(token, SIGNING_LABEL), args.out, clock=SystemClock(), note=args.note)
        finally:
            store.close()
    finally:
        token.close_blocking()
    return f"backup written to {args.out}: {_describe(manifest)}"


def _verify(args: argparse.Namespace) -> str:
    manifest = verify_backup(args.dir, args.public_key.read_bytes())
    return f"backup verified: {_describe(manifest)}"


def _restore(args: argparse.Namespace) -> str:
    config = _config_of(args)
    manifest = restore_blocking(args.dir, config.store_path, args.public_key.read_bytes(), force=args.force)
    cursors = ", ".join(f"{peer} from {seq}" for peer, seq in sorted(manifest.store.inbox.items())) or "no register updates yet"
    return f"store restored: {_describe(manifest)}; register resumes {cursors}"


def _seal(args: argparse.Namespace) -> str:
    if args.public_key is not None:
        verify_backup(args.dir, args.public_key.read_bytes())
    recipient = args.recipient
    if recipient is None:
        recipient = _config_of(args).offsite_recipient
        if recipient is None:
            raise ConfigError("no --recipient given and no backup.offsite_recipient configured")
    size_bytes = seal_offsite_blocking(args.dir, recipient.read_bytes(), args.out)
    return f"off-site file written to {args.out}: {size_bytes:,} bytes"


def _open(args: argparse.Namespace) -> str:
    names = open_offsite_blocking(args.file, args.key.read_bytes(), args.out)
    return f"off-site file opened into {args.out}: {len(names)} files (verify before restoring)"


def _keygen(args: argparse.Namespace) -> str:
    private_pem, public_pem = generate_recipient_keypair()
    write_private_file(args.out_private, private_pem)
    write_private_file(args.out_public, public_pem)
    return f"recipient key pair written (private {args.out_private}, public {args.out_public})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="csd configuration (store path, HSM)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("backup", help="write a signed backup of the store (csd may run)")
    p.add_argument("--out", type=Path, required=True, help="backup directory (absent or empty)")
    p.add_argument("--note", default="", help="free text recorded in the manifest")
    p.set_defaults(run=_backup)
    p = sub.add_parser("verify", help="verify a backup's signature, size, digest and content")
    p.add_argument("dir", type=Path)
    p.add_argument("--public-key", type=Path, required=True, help="the CS signing key's public half (DER)")
    p.set_defaults(run=_verify)
    p = sub.add_parser("restore", help="verify, then restore into the configured store path (csd stopped)")
    p.add_argument("dir", type=Path)
    p.add_argument("--public-key", type=Path, required=True, help="the CS signing key's public half (DER)")
    p.add_argument("--force", action="store_true", help="replace an existing store")
    p.set_defaults(run=_restore)
    p = sub.add_parser("seal-offsite", help="encrypt a backup to the off-site recipient")
    p.add_argument("dir", type=Path)
    p.add_argument("--recipient", type=Path, default=None, help="recipient's X25519 public key (PEM); default: backup.offsite_recipient of --config")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--public-key", type=Path, default=None, help="verify the backup with this CS key first")
    p.set_defaults(run=_seal)
    p = sub.add_parser("open-offsite", help="decrypt an off-site file into a backup directory")
    p.add_argument("file", type=Path)
    p.add_argument("--key", type=Path, required=True, help="recipient's X25519 private key (PEM)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=_open)
    p = sub.add_parser("keygen-offsite", help="make an off-site recipient key pair (demo and test)")
    p.add_argument("--out-private", type=Path, required=True)
    p.add_argument("--out-public", type=Path, required=True)
    p.set_defaults(run=_keygen)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``cs-backup`` command; 0 on success, 1 with one line on stderr otherwise."""
    args = _parser().parse_args(argv)
    try:
        message = args.run(args)
    except (BackupError, ConfigError, HsmError, StorageError) as exc:
        print(f"{PROG}: {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: {args.command}: {exc.strerror or type(exc).__name__}: {exc.filename or ''}", file=sys.stderr)
        return 1
    print(f"{PROG}: {message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
