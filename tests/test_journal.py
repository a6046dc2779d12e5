"""Journal entries: every log call names a catalogued event kind; fields and priorities are right."""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from firmware_app.journal import (
    CATALOG,
    StructuredJournalHandler,
    configure_logging,
    event,
    message_id,
    priority,
    under_journald,
)

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ["firmware_app", "hsm", "storage", "watchdog"]
_LEVELS = {"debug", "info", "warning", "error", "critical", "exception"}


def _log_calls():
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _LEVELS
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "log"
                ):
                    yield path.relative_to(ROOT), node


def test_every_log_call_names_a_catalogued_event_kind():
    calls = list(_log_calls())
    assert len(calls) > 40
    missing = []
    for path, node in calls:
        kinds = [
            kw.value.args[0].value
            for kw in node.keywords
            if kw.arg == "extra"
            and isinstance(kw.value, ast.Call)
            and getattr(kw.value.func, "id", None) == "event"
            and kw.value.args
            and isinstance(kw.value.args[0], ast.Constant)
        ]
        if len(kinds) != 1 or kinds[0] not in CATALOG:
            missing.append(f"{path}:{node.lineno}")
    assert not missing, f"log calls without a catalogued extra=event(...): {missing}"


def test_catalogue_names_are_well_formed_and_ids_unique():
    ids = {message_id(name) for name in CATALOG}
    assert len(ids) == len(CATALOG)
    for name, text in CATALOG.items():
        assert re.fullmatch(r"[a-z]+(\.[a-z_]+)+", name), name
        assert text.endswith(".") and len(text) < 120, name
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_message_id_is_stable():
    # The MESSAGE_ID is part of the interface (operators filter on it): it must never change.
    assert message_id("csd.ready") == "dc34d012f8045531a6417eda45953796"
    assert message_id("watchdog.check_failed") == "fab49ceff6605a44b82714815200594b"


def test_unknown_kind_is_refused():
    with pytest.raises(KeyError):
        event("no.such_kind")


@pytest.mark.parametrize(
    ("level", "expected"),
    [(logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3), (logging.CRITICAL, 2), (60, 1)],
)
def test_priority_by_severity(level, expected):
    assert priority(level) == expected


def test_handler_sends_message_id_priority_and_no_arguments():
    sent = []  # a recording sender stands in for systemd.journal.send (named fake: no journald in-process)
    handler = StructuredJournalHandler("csd", send=lambda message, **fields: sent.append((message, fields)))
    logger = logging.getLogger("test.journal.handler")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("link %s down", "prefecture", extra=event("link.down"))
        logger.info("no kind")
    finally:
        logger.removeHandler(handler)
    (message, fields), (message2, fields2) = sent
    assert message == "link prefecture down"
    assert fields["MESSAGE_ID"] == message_id("link.down")
    assert fields["CS_EVENT"] == "link.down"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "csd"
    assert "CODE_ARGS" not in fields and "EXCEPTION_INFO" not in fields
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", key) for key in fields)
    assert "MESSAGE_ID" not in fields2 and fields2["PRIORITY"] == "6"


def test_under_journald_only_when_stderr_is_the_journal_stream():
    with tempfile.TemporaryFile("w") as stream:
        st = os.fstat(stream.fileno())
        assert under_journald(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not under_journald(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not under_journald(stream, {"JOURNAL_STREAM": "garbage"})
        assert not under_journald(stream, {})


def test_plain_stderr_without_journald_names_the_kind():
    code = (
        "import logging; from firmware_app.journal import configure_logging, event;"
        "assert configure_logging('INFO', 'csd') is False;"
        "logging.getLogger('csd').info('ready', extra=event('csd.ready'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert re.search(r" INFO \[csd\.ready\] csd: ready$", out.stderr.strip()), out.stderr


def test_configure_logging_replaces_handlers():
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        assert configure_logging("WARNING", journal=False) is False
        assert len(root.handlers) == 1 and root.level == logging.WARNING
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
