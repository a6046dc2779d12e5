"""The tamper-evident audit trail: an append-only hash chain with HSM-signed checkpoints."""
