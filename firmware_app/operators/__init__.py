"""Operators of the console: roles and rights, password rules, lockout, and their store."""
