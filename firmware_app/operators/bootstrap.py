"""``csctl bootstrap-admin``: the first security admin, created locally with file-system access to
the store and the HSM (run as the service user while csd is stopped).  There is no default
password: it is typed twice at the terminal, or read from standard input.  Service-level (it opens
the store and the token itself), like ``cs-backup``; the console only calls it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from firmware_app.audit.trail import AuditTrail
from firmware_app.clock import SystemClock
from firmware_app.config import ConfigError, load_config
from firmware_app.operators.errors import OperatorError
from firmware_app.operators.kdf import KdfParams
from firmware_app.operators.policy import PasswordPolicy
from firmware_app.operators.registry import OperatorRegistry
from hsm.config import open_token
from hsm.errors import HsmError
from hsm.keys import Signer
from hsm.labels import SIGNING_LABEL
from hsm.token import Token
from storage.errors import StorageError
from storage.store import Store, store_in_use


def bootstrap_admin(config_path: Path, operator_id: str, password: str, terminal: str, *, token: Token | None = None) -> str:
    """Create the first security admin and record it in the audit trail (signed checkpoint)."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise OperatorError(f"configuration refused: {exc}") from None
    if store_in_use(config.store_path):
        raise OperatorError("csd is running: stop it first (the audit chain has one writer)")
    console = config.console
    params = KdfParams(console.kdf_memory_kib, console.kdf_iterations, console.kdf_lanes) if console else KdfParams()
    policy = PasswordPolicy(min_chars=console.password_min_chars) if console else PasswordPolicy()
    owns_token = token is None
    try:
        if token is None:
            token = open_token(config.hsm)
        store = Store(config.store_path, map_size_bytes=config.map_size_bytes)
    except (HsmError, StorageError, OSError) as exc:
        raise OperatorError(f"cannot open the HSM or the store: {type(exc).__name__}") from None
    clock = SystemClock()
    try:
        registry = OperatorRegistry(store, clock, password_policy=policy, kdf_params=params)
        registry.bootstrap_blocking(operator_id, password, terminal)

        async def record() -> None:
            trail = AuditTrail(store, Signer(token, SIGNING_LABEL), clock)
            await trail.start()
            await trail.record("operator.bootstrap", actor="bootstrap", subject=f"operator:{operator_id}", detail={"terminal": terminal})
            await trail.stop()

        asyncio.run(record())
    finally:
        store.close()
        if owns_token and token is not None:
            token.close_blocking()
    return f"security admin {operator_id} created; log in with csctl --user {operator_id} whoami"
