"""The [room.osdp] table: defaults, relative key paths, and errors that name the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_app.room.errors import RoomConfigError
from firmware_app.room.osdp.errors import OsdpConfigError
from firmware_app.room.osdp.settings import load_osdp_config


def table(**overrides):
    reader = {"name": "mr-in", "door": "server-room", "address": 101, "key_file": "keys/mr-in.scbk"}
    data = {"device": "/dev/ttyUSB0", "readers": [reader]}
    data.update(overrides)
    return data


def test_minimal_table_and_defaults():
    config = load_osdp_config(table(), Path("/etc/cs"))
    assert (config.device, config.baud, config.offline_after_s, config.retry_interval_s) == ("/dev/ttyUSB0", 115200, 1.0, 2.0)
    (reader,) = config.readers
    assert (reader.name, reader.door, reader.address, reader.contact_input, reader.rex_input) == ("mr-in", "server-room", 101, 0, 1)
    assert reader.key_file == Path("/etc/cs/keys/mr-in.scbk")


def test_absolute_key_path_and_every_option():
    reader = {"name": "a", "door": "d", "address": 0, "key_file": "/run/credentials/csd.service/a", "contact_input": 3, "rex_input": 2, "strike_output": 1}
    config = load_osdp_config(table(baud=9600, offline_after_s=0.5, retry_interval_s=10, readers=[reader]), Path("/x"))
    assert config.baud == 9600 and config.readers[0].key_file == Path("/run/credentials/csd.service/a")
    assert (config.readers[0].contact_input, config.readers[0].rex_input, config.readers[0].strike_output) == (3, 2, 1)


def reader_with(**kw):
    r = {"name": "mr-in", "door": "server-room", "address": 101, "key_file": "k"}
    r.update(kw)
    return r


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "room.osdp must be a table"),
        ({"readers": [reader_with()]}, "room.osdp.device is required"),
        (table(device=""), "room.osdp.device"),
        (table(device=3), "room.osdp.device has the wrong type"),
        (table(baud=1200), "room.osdp.baud"),
        (table(baud=True), "room.osdp.baud has the wrong type"),
        (table(offline_after_s=0), "room.osdp.offline_after_s"),
        (table(offline_after_s=float("nan")), "room.osdp.offline_after_s"),
        (table(retry_interval_s="2"), "room.osdp.retry_interval_s"),
        (table(readers=[]), "room.osdp.readers must list"),
        (table(readers=[reader_with(address=i, name=f"r{i}") for i in range(33)]), "room.osdp.readers must list"),
        (table(readers="r"), "room.osdp.readers has the wrong type"),
        (table(readers=["r"]), r"room.osdp.readers\[0\] must be a table"),
        (table(readers=[reader_with(name="bad name")]), r"room.osdp.readers\[0\].name"),
        (table(readers=[reader_with(door="")]), r"room.osdp.readers\[0\].door"),
        (table(readers=[reader_with(address=127)]), r"room.osdp.readers\[0\].address"),
        (table(readers=[reader_with(address=-1)]), r"room.osdp.readers\[0\].address"),
        (table(readers=[reader_with(address="101")]), r"room.osdp.readers\[0\].address has the wrong type"),
        (table(readers=[{"name": "a", "door": "d", "address": 1}]), r"room.osdp.readers\[0\].key_file is required"),
        (table(readers=[reader_with(key_file="")]), r"room.osdp.readers\[0\].key_file"),
        (table(readers=[reader_with(contact_input=32)]), r"room.osdp.readers\[0\].contact_input"),
        (table(readers=[reader_with(rex_input=0)]), r"room.osdp.readers\[0\].rex_input must differ"),
        (table(readers=[reader_with(strike_output=-1)]), r"room.osdp.readers\[0\].strike_output"),
        (table(readers=[reader_with(scbk="00" * 16)]), r"unknown key 'scbk' in room.osdp.readers\[0\]"),
        (table(readers=[reader_with(), reader_with(address=102)]), "same name"),
        (table(readers=[reader_with(), reader_with(name="other")]), "same address"),
        (table(parity="none"), "unknown key 'parity' in room.osdp"),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(OsdpConfigError, match=message) as info:
        load_osdp_config(data, Path("/etc/cs"))
    assert isinstance(info.value, RoomConfigError)  # the room's config error family catches it
    assert "00000000" not in str(info.value)  # a key pasted in the config is not echoed
