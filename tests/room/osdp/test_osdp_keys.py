"""Reader key files: only a private regular file of 32 hex digits is taken; errors never show it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firmware_app.room.osdp.errors import KeyFileError
from firmware_app.room.osdp.handshake import SCBK_DEFAULT
from firmware_app.room.osdp.keys import load_scbk_blocking

KEY_HEX = "8f1e2d3c4b5a69788796a5b4c3d2e1f0"


def write_key(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("text", [KEY_HEX, KEY_HEX + "\n", "  " + KEY_HEX.upper() + "\n"])
def test_a_private_hex_key_is_read(tmp_path, text):
    assert load_scbk_blocking(write_key(tmp_path / "k", text)) == bytes.fromhex(KEY_HEX)
    assert load_scbk_blocking(write_key(tmp_path / "r", text, 0o400)) == bytes.fromhex(KEY_HEX)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666, 0o610])
def test_a_key_open_to_others_is_refused(tmp_path, mode):
    with pytest.raises(KeyFileError, match="group or others"):
        load_scbk_blocking(write_key(tmp_path / "k", KEY_HEX, mode))


@pytest.mark.parametrize(
    "text",
    ["", "00", KEY_HEX[:-1], KEY_HEX + "0", KEY_HEX[:-2] + "zz", "x" * 300, "é" * 16, KEY_HEX[:16] + " " + KEY_HEX[16:], "0" * 32, SCBK_DEFAULT.hex()],
)
def test_malformed_or_weak_contents_are_refused_without_showing_them(tmp_path, text):
    with pytest.raises(KeyFileError) as info:
        load_scbk_blocking(write_key(tmp_path / "k", text))
    assert KEY_HEX[:8] not in str(info.value) and (not text.strip() or text.strip()[:8] not in str(info.value))


def test_missing_symlinked_or_special_files_are_refused(tmp_path):
    with pytest.raises(KeyFileError, match="cannot be opened"):
        load_scbk_blocking(tmp_path / "absent")
    real = write_key(tmp_path / "real", KEY_HEX)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(KeyFileError, match="cannot be opened"):
        load_scbk_blocking(tmp_path / "link")
    os.mkfifo(tmp_path / "fifo", 0o600)
    fd = os.open(tmp_path / "fifo", os.O_RDWR | os.O_NONBLOCK)  # so opening it does not block
    try:
        with pytest.raises(KeyFileError, match="regular file"):
            load_scbk_blocking(tmp_path / "fifo")
    finally:
        os.close(fd)
    with pytest.raises(KeyFileError):
        load_scbk_blocking(tmp_path)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_a_key_owned_by_someone_else_is_refused(tmp_path):
    path = write_key(tmp_path / "k", KEY_HEX)
    os.chown(path, 65534, 65534)
    with pytest.raises(KeyFileError, match="owned"):
        load_scbk_blocking(path)
