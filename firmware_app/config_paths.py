"""Paths named in csd.toml: relative ones are relative to the file's directory, and
``${CREDENTIALS_DIRECTORY}/NAME`` is the credential NAME that systemd passed to this process
(``LoadCredential=``; the directory differs per unit, e.g. for ``csctl bootstrap-admin`` run with
``systemd-run``), so one configuration serves csd and the tools run beside it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CREDENTIALS", "config_path"]

CREDENTIALS = "${CREDENTIALS_DIRECTORY}"


def config_path(text: str, base: Path, environ: Mapping[str, str] | None = None) -> Path:
    """The path ``text`` names; ValueError when it names a credential and none were passed."""
    if text == CREDENTIALS or text.startswith(CREDENTIALS + "/"):
        directory = (os.environ if environ is None else environ).get("CREDENTIALS_DIRECTORY", "")
        if not directory:
            raise ValueError("names ${CREDENTIALS_DIRECTORY}, but no credentials were passed (LoadCredential= under systemd)")
        return Path(directory) / text[len(CREDENTIALS) + 1 :]
    path = Path(text)
    return path if path.is_absolute() else base / path
