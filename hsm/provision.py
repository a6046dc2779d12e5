"""Provisioning: create the appliance's keys in a token (idempotent), and the ``cs-provision`` command."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from firmware_app.domain.retention import HISTORY_RETENTION_YEARS
from hsm.config import HsmConfig, open_token
from hsm.errors import HsmError
from hsm.labels import KEK_LABEL, SIGNING_LABEL, epoch_label
from hsm.softhsm import ensure_softhsm_token
from hsm.token import Token



def initial_epochs(today: dt.date) -> list[str]:
    """Epoch keys made at provisioning; later ones are created when first needed.

    History versions superseded this year or next expire 150 years on; destination records and
    move-out certificates are grouped by the month they were received.
    """
    next_month = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return [
        epoch_label("history", str(today.year + HISTORY_RETENTION_YEARS)),
        epoch_label("history", str(today.year + 1 + HISTORY_RETENTION_YEARS)),
        epoch_label("destination", today.strftime("%Y%m")),
        epoch_label("destination", next_month.strftime("%Y%m")),
        epoch_label("moveout", today.strftime("%Y%m")),
        epoch_label("moveout", next_month.strftime("%Y%m")),
    ]


def provision_keys(token: Token, today: dt.date) -> list[str]:
    """Create whatever of the KEK, signing key and initial epoch keys is missing; returns what was created."""
    from pkcs11 import ObjectClass  # Label look-ups of the key pair need the object class.

    created = []
    if not token.has_key_blocking(KEK_LABEL):
        token.create_wrapping_key_blocking(KEK_LABEL)
        created.append(KEK_LABEL)
    if not token.has_key_blocking(SIGNING_LABEL, ObjectClass.PRIVATE_KEY):
        token.create_signing_key_blocking(SIGNING_LABEL)
        created.append(SIGNING_LABEL)
    for label in initial_epochs(today):
        if not token.has_key_blocking(label):
            token.create_wrapping_key_blocking(label)
            created.append(label)
    return created


def main(argv: list[str] | None = None) -> int:
    """``cs-provision``: create the appliance's keys in the HSM token."""
    parser = argparse.ArgumentParser(prog="cs-provision", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="appliance state directory")
    parser.add_argument("--softhsm", action="store_true", help="stand up a SoftHSM2 token under the state directory first")
    parser.add_argument("--module", default=None, help="PKCS#11 module path (real HSM)")
    parser.add_argument("--token-label", default="cs-appliance")
    parser.add_argument("--pin-file", type=Path, default=None, help="file holding the user PIN (mode 0600)")
    parser.add_argument("--public-key-out", type=Path, default=None, help="write the signing key's public half here (DER), for the peers")
    args = parser.parse_args(argv)
    try:
        if args.softhsm:
            config = ensure_softhsm_token(args.state_dir, args.token_label)
        else:
            if args.module is None or args.pin_file is None:
                parser.error("--module and --pin-file are required without --softhsm")
            config = HsmConfig(module_path=args.module, token_label=args.token_label, pin_file=args.pin_file)
        token = open_token(config)
        try:
            created = provision_keys(token, dt.date.today())
            if args.public_key_out is not None:
                args.public_key_out.write_bytes(token.public_key_der_blocking(SIGNING_LABEL))
        finally:
            token.close_blocking()
    except HsmError as exc:
        print(f"cs-provision: {exc}", file=sys.stderr)
        return 1
    print(f"cs-provision: token ready, keys created: {len(created)}")
    for label in created:
        print(f"  created {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
