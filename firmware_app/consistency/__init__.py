"""Consistency check (整合性確認): range digests that let two sides find the records that differ."""
