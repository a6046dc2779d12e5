"""Shared pieces of the machine-room tests: one room configuration and its badge list."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_app.room.badges import BadgeList, load_badges
from firmware_app.room.settings import RoomConfig, load_room_config

#: Synthetic badges and staff references only.
BADGES_TOML = """
[[badge]]
number = "37-1001"
holder = "staff-0001"

[[badge]]
number = "37-1002"
holder = "staff-0002"
after_hours = true

[[badge]]
number = "37-1003"
holder = "staff-0003"
revoked = true

[[badge]]
number = "37-1004"
holder = "staff-0004"
doors = ["side-door"]
"""

ROOM_TABLE = {
    "badges": "badges.toml",
    "offline_hold_s": 30,
    "flap_count": 3,
    "flap_window_s": 300,
    "corroboration_window_s": 15,
    "doors": [
        {"name": "server-room", "readers": {"mr-in": "in", "mr-out": "out"}, "camera": "mr-cam", "held_open_s": 60, "prealarm_s": 20},
        {"name": "side-door", "readers": {"side-in": "in"}},
    ],
    "cameras": [{"name": "mr-cam", "door": "server-room", "frigate": "server_room", "onvif": "mr_cam"}],
    "sensors": [
        {"name": "mr-contact", "zigbee": "building1/server_room/door", "door": "server-room", "checkin_interval_s": 3600},
        {"name": "side-lock", "zigbee": "side_lock", "kind": "lock", "door": "side-door", "checkin_interval_s": 3600},
    ],
}


@pytest.fixture
def room_config(tmp_path: Path) -> RoomConfig:
    (tmp_path / "badges.toml").write_text(BADGES_TOML)
    return load_room_config(ROOM_TABLE, tmp_path)


@pytest.fixture
def badges(room_config: RoomConfig) -> BadgeList:
    return load_badges(room_config.badges_path, room_config.schedule)
