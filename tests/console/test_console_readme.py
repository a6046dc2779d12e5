"""Every ``csctl`` command the README prints is one csctl accepts (its own parser); the commands'
behaviour is run as printed by test_console_docs.py on docs/console.md's walkthrough."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from firmware_app.console.cli import _parser

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    inline = re.findall(r"`(csctl [^`]+)`", text.replace("\n  ", " "))
    blocks = [line.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines()]
    commands = [c.split("  #")[0].strip() for c in inline + blocks if c.startswith("csctl ")]
    return sorted(set(commands))


def test_the_readme_prints_csctl_commands():
    assert len(readme_commands()) >= 6


@pytest.mark.parametrize("command", readme_commands())
def test_each_readme_command_parses(command: str) -> None:
    argv = shlex.split(command)[1:]
    if argv == ["--help"]:
        with pytest.raises(SystemExit) as done:
            _parser().parse_args(argv)
        assert done.value.code == 0
        return
    args = _parser().parse_args(argv)
    assert args.command
