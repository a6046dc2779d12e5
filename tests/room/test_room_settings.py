"""The ``[room]`` table and the badge file: every refusal names its key and never echoes a badge."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from firmware_app.clock import JST
from firmware_app.room.badges import load_badges
from firmware_app.room.errors import RoomConfigError
from firmware_app.room.settings import Schedule, load_room_config
from tests.room.conftest import ROOM_TABLE


def table(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(ROOM_TABLE)
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (table(surprise=1), "surprise"),
        (table(offline_hold_s="soon"), "room.offline_hold_s"),
        (table(flap_count=1), "room.flap_count"),
        (table(doors=[{"name": "a b"}]), "room.doors[0].name"),
        (table(doors=[{"name": "d", "readers": {"r": "sideways"}}]), "room.doors[0].readers"),
        (table(doors=[{"name": "d"}, {"name": "d"}], cameras=[], sensors=[]), "room.doors[1].name"),
        (table(cameras=[{"name": "c", "door": "nowhere"}]), "unknown door"),
        (table(sensors=[{"name": "s", "zigbee": "z", "kind": "valve"}]), "room.sensors[0].kind"),
        (table(schedule={"hours": "18:00-08:30"}), "room.schedule.hours"),
        (table(schedule={"days": ["funday"]}), "room.schedule.days"),
        (table(mqtt={"port": 0}), "room.mqtt.port"),
        (table(mqtt={"onvif_prefixes": ["a/#"]}), "room.mqtt.onvif_prefixes"),
        (table(mqtt={"client_id": "has space"}), "room.mqtt.client_id"),
    ],
)
def test_bad_room_tables_name_their_key(tmp_path: Path, data: dict[str, Any], names: str) -> None:
    with pytest.raises(RoomConfigError, match=names.replace("[", r"\[").replace("]", r"\]")):
        load_room_config(data, tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        '[[badge]]\nnumber = "37-1001"\n',
        '[[badge]]\nnumber = "37 1001"\nholder = "staff-1"\n',
        '[[badge]]\nnumber = "37-1001"\nholder = "staff-1"\ncolour = "red"\n',
        '[[badge]]\nnumber = "37-1001"\nholder = "staff-1"\n[[badge]]\nnumber = "37-1001"\nholder = "staff-2"\n',
        '[[badge]]\nnumber = "37-1001"\nholder = "staff-1"\nrevoked = "yes"\n',
        'number = "37-1001"',
        "not toml 37-1001 [",
    ],
)
def test_bad_badge_files_are_refused_without_echoing_numbers(tmp_path: Path, text: str) -> None:
    path = tmp_path / "badges.toml"
    path.write_text(text)
    with pytest.raises(RoomConfigError) as info:
        load_badges(path, Schedule())
    assert "37" not in str(info.value)


def test_schedule_is_jst_working_hours() -> None:
    schedule = Schedule()
    assert schedule.is_working_time(dt.datetime(2026, 11, 26, 9, 0, tzinfo=JST))
    assert not schedule.is_working_time(dt.datetime(2026, 11, 26, 18, 0, tzinfo=JST))
    assert not schedule.is_working_time(dt.datetime(2026, 11, 28, 10, 0, tzinfo=JST))  # a Saturday
    assert schedule.is_working_time(dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC))  # 09:00 JST


def test_mqtt_login_and_relative_password_file(tmp_path: Path) -> None:
    config = load_room_config(table(mqtt={"username": "cs-room", "password_file": "secrets/mqtt"}), tmp_path)
    assert config.mqtt is not None and config.mqtt.password_file == tmp_path / "secrets/mqtt"


def test_broker_password_file_errors_never_echo_it(tmp_path: Path) -> None:
    from firmware_app.room.broker import read_password_blocking

    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\nignored\n")
    assert read_password_blocking(secret) == "s3cret-value"
    for content in (b"", b"\xff\xfe", b"x" * 5000):
        secret.write_bytes(content)
        with pytest.raises(RoomConfigError) as info:
            read_password_blocking(secret)
        assert "s3cret" not in str(info.value) and "xxxx" not in str(info.value)
    with pytest.raises(RoomConfigError):
        read_password_blocking(tmp_path / "missing")
