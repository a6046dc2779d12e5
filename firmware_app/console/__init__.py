"""The operator console: ``csctl`` talking to ``csd`` over a Unix socket, with operator login,
rights by role, idle lock and every step in the audit trail."""
