"""``csd``'s configuration file: what loads, what the defaults are, and that every malformed file
is refused with a ``ConfigError`` naming the key at fault.  Pure and fast: no HSM, no sockets."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest

from firmware_app.config import MAX_CONFIG_BYTES, Config, ConfigError, LinkLimits, load_config
from firmware_app.links.outbound import Endpoint
from hsm.config import DEFAULT_MODULE_PATH, HsmConfig
from peers.rig import Pki, write_config

PIN_REGISTER = "1" * 64
PIN_PREFECTURE = "ab" * 32
PIN_NATIONAL = "0123456789abcdef" * 4

#: Every key set, none to its default; relative paths, and one absolute one.
FULL: dict[str, Any] = {
    "storage": {"path": "data/identity", "map_size_mib": 64},
    "hsm": {
        "module_path": "/opt/hsm/lib/pkcs11.so",
        "token_label": "cs-ward-13110",
        "pin_file": "credentials/hsm-pin",
        "softhsm_conf": "softhsm/softhsm2.conf",
        "strict": True,
    },
    "tls": {"cert": "tls/cs-cert.pem", "key": "tls/cs-key.pem", "ca": "/etc/cs-appliance/ca.pem", "handshake_timeout_s": 2.5},
    "listen": {"host": "0.0.0.0", "port": 7443},
    "peers": {
        "register": {"pin_sha256": PIN_REGISTER},
        "prefecture": {"pin_sha256": PIN_PREFECTURE.upper(), "host": "pref.example", "port": 7501, "server_name": "pref-cs-link"},
        "national": {"pin_sha256": PIN_NATIONAL, "host": "10.0.0.9", "port": 7502},
    },
    "links": {
        "max_frame_bytes": 65536,
        "max_group": 64,
        "window_entries": 1000,
        "batch_entries": 100,
        "backoff_initial_s": 0.5,
        "backoff_max_s": 30,
    },
    "retention": {"moveout_keep_days": 90},
    "daemon": {"drain_timeout_s": 4},
}

#: Only what has no default.
MINIMAL: dict[str, Any] = {
    "storage": {"path": "data/identity"},
    "hsm": {"pin_file": "credentials/hsm-pin"},
    "tls": {"cert": "tls/cs-cert.pem", "key": "tls/cs-key.pem", "ca": "tls/ca.pem"},
    "peers": {"register": {"pin_sha256": PIN_REGISTER}},
}


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(type(value))


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for the nested tables of these tests."""
    lines = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        lines.append(f"[{prefix}]")
    lines.extend(f"{key} = {_value(value)}" for key, value in scalars.items())
    for key, value in tables.items():
        lines.append(to_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(lines) + "\n"


def write(directory: Path, data: dict[str, Any] | str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "csd.toml"
    if isinstance(data, dict):
        data = to_toml(data)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def edited(base: dict[str, Any], dotted: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """A deep copy of ``base`` with ``dotted`` (``a.b.c``) set to ``value`` or deleted."""
    data = copy.deepcopy(base)
    *parents, last = dotted.split(".")
    table = data
    for name in parents:
        table = table.setdefault(name, {})
    if delete:
        del table[last]
    else:
        table[last] = value
    return data


def refused(tmp_path: Path, data: dict[str, Any] | str | bytes) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path / "etc", data))
    return str(info.value)


# -- what loads -------------------------------------------------------------------------------


def test_the_writer_of_these_tests_round_trips() -> None:
    import tomllib

    assert tomllib.loads(to_toml(FULL)) == FULL


def test_full_config_loads_with_paths_relative_to_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "etc", FULL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # Given as a relative path from another working directory: still relative to the file's own.
    config = load_config(Path("../etc/csd.toml"))
    etc = (tmp_path / "etc").resolve()

    assert config.store_path == etc / "data" / "identity"
    assert config.store_path.is_absolute()
    assert config.map_size_bytes == 64 << 20
    assert config.hsm == HsmConfig(
        module_path="/opt/hsm/lib/pkcs11.so",
        token_label="cs-ward-13110",
        pin_file=etc / "credentials" / "hsm-pin",
        softhsm_conf=etc / "softhsm" / "softhsm2.conf",
    )
    assert config.strict_hsm is True
    assert (config.tls_cert, config.tls_key) == (etc / "tls" / "cs-cert.pem", etc / "tls" / "cs-key.pem")
    assert config.tls_ca == Path("/etc/cs-appliance/ca.pem")  # absolute stays as written
    assert config.handshake_timeout_s == 2.5
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 7443)
    assert set(config.peers) == {"register", "prefecture", "national"}
    assert config.peers["register"].endpoint is None  # the CS never connects to the register
    assert config.peers["prefecture"].pin_sha256 == PIN_PREFECTURE  # upper-case hex is taken, lower-cased
    assert config.peers["prefecture"].endpoint == Endpoint("pref.example", 7501, "pref-cs-link")
    assert config.peers["national"].endpoint == Endpoint("10.0.0.9", 7502, "localhost")
    assert config.limits == LinkLimits(
        max_frame_bytes=65536, max_group=64, window_entries=1000, batch_entries=100, backoff_initial_s=0.5, backoff_max_s=30.0
    )
    assert isinstance(config.limits.backoff_max_s, float) and isinstance(config.drain_timeout_s, float)
    assert config.moveout_keep_days == 90
    assert config.drain_timeout_s == 4.0


def test_defaults_apply(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.map_size_bytes == 256 << 20
    assert config.hsm.module_path == DEFAULT_MODULE_PATH
    assert config.hsm.token_label == "cs-appliance"
    assert config.hsm.softhsm_conf is None
    assert config.strict_hsm is False
    assert config.handshake_timeout_s == 10.0
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 7400)
    assert list(config.peers) == ["register"]
    assert config.limits == LinkLimits()
    assert config.moveout_keep_days == 30
    assert config.drain_timeout_s == 10.0
    assert config.outbound() == {}


def test_bounds_are_inclusive(tmp_path: Path) -> None:
    low = edited(edited(edited(MINIMAL, "listen.port", 0), "daemon.drain_timeout_s", 0.1), "retention.moveout_keep_days", 1)
    config = load_config(write(tmp_path / "low", low))
    assert (config.listen_port, config.drain_timeout_s, config.moveout_keep_days) == (0, 0.1, 1)
    high = edited(edited(edited(MINIMAL, "listen.port", 65535), "daemon.drain_timeout_s", 300), "retention.moveout_keep_days", 365)
    config = load_config(write(tmp_path / "high", high))
    assert (config.listen_port, config.drain_timeout_s, config.moveout_keep_days) == (65535, 300.0, 365)


def test_the_rig_writes_a_config_that_loads(tmp_path: Path, pki: Pki) -> None:
    hsm = HsmConfig(pin_file=tmp_path / "hsm-pin", softhsm_conf=tmp_path / "softhsm2.conf")
    path = write_config(tmp_path / "csd.toml", store=tmp_path / "store", hsm=hsm, pki=pki, listen_port=7400, prefecture_port=7401, national_port=7402)
    config = load_config(path)
    assert config.hsm == hsm
    assert {name: peer.pin_sha256 for name, peer in config.peers.items()} == {name: pki.pin(name) for name in ("register", "prefecture", "national")}
    assert config.tls().pinned_sha256 == frozenset(pki.pin(name) for name in ("register", "prefecture", "national"))


# -- TLS pins and outbound channels --------------------------------------------------------------


def test_tls_pins_every_peer_and_tls_for_only_one(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    tls = config.tls()
    assert tls.pinned_sha256 == frozenset({PIN_REGISTER, PIN_PREFECTURE, PIN_NATIONAL})
    assert (tls.cert_path, tls.key_path, tls.ca_path) == (config.tls_cert, config.tls_key, config.tls_ca)
    assert tls.handshake_timeout_s == 2.5
    for name, pin in (("register", PIN_REGISTER), ("prefecture", PIN_PREFECTURE), ("national", PIN_NATIONAL)):
        one = config.tls_for(name)
        assert one.pinned_sha256 == frozenset({pin})
        assert (one.cert_path, one.key_path, one.ca_path, one.handshake_timeout_s) == (tls.cert_path, tls.key_path, tls.ca_path, 2.5)


def test_outbound_channels_go_to_the_peers_with_an_endpoint(tmp_path: Path) -> None:
    assert load_config(write(tmp_path / "full", FULL)).outbound() == {"prefecture": "prefecture", "card_system": "national"}
    only_pref = edited(FULL, "peers.national", delete=True)
    assert load_config(write(tmp_path / "pref", only_pref)).outbound() == {"prefecture": "prefecture"}
    only_national = edited(FULL, "peers.prefecture", delete=True)
    config = load_config(write(tmp_path / "national", only_national))
    assert config.outbound() == {"card_system": "national"}
    assert config.tls().pinned_sha256 == frozenset({PIN_REGISTER, PIN_NATIONAL})


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert isinstance(config, Config)
    with pytest.raises(AttributeError):
        config.listen_port = 1  # type: ignore[misc]


# -- what is refused, naming the key -------------------------------------------------------------

MISSING = [
    "storage.path",
    "hsm.pin_file",
    "tls.cert",
    "tls.key",
    "tls.ca",
    "peers.register.pin_sha256",
    "peers.prefecture.pin_sha256",
    "peers.prefecture.host",
    "peers.national.host",
]


@pytest.mark.parametrize("key", MISSING)
def test_missing_required_key(tmp_path: Path, key: str) -> None:
    message = refused(tmp_path, edited(FULL, key, delete=True))
    assert key in message and "required" in message


@pytest.mark.parametrize("table", ["storage", "hsm", "tls"])
def test_missing_required_table(tmp_path: Path, table: str) -> None:
    assert f"{table}." in refused(tmp_path, edited(MINIMAL, table, delete=True))


@pytest.mark.parametrize("data", [edited(MINIMAL, "peers", delete=True), edited(MINIMAL, "peers.register", delete=True), edited(FULL, "peers.register", delete=True)])
def test_the_register_peer_is_required(tmp_path: Path, data: dict[str, Any]) -> None:
    assert "peers.register" in refused(tmp_path, data)


WRONG_TYPE = [
    ("storage.path", 5),
    ("storage.map_size_mib", "64"),
    ("storage.map_size_mib", 64.0),
    ("hsm.module_path", ["/usr/lib/softhsm/libsofthsm2.so"]),
    ("hsm.token_label", 1),
    ("hsm.pin_file", True),
    ("hsm.softhsm_conf", 0),
    ("hsm.strict", "yes"),
    ("hsm.strict", 1),
    ("tls.cert", 1),
    ("tls.handshake_timeout_s", "5"),
    ("listen.host", 127),
    ("listen.port", "7400"),
    ("listen.port", 7400.0),
    ("peers.register.pin_sha256", 1),
    ("peers.prefecture.host", 1),
    ("peers.prefecture.port", "7501"),
    ("peers.national.server_name", 1),
    ("links.max_group", 1.5),
    ("links.backoff_max_s", "10"),
    ("retention.moveout_keep_days", "30"),
    ("daemon.drain_timeout_s", "4"),
]


@pytest.mark.parametrize(("key", "value"), WRONG_TYPE)
def test_wrong_type(tmp_path: Path, key: str, value: Any) -> None:
    message = refused(tmp_path, edited(FULL, key, value))
    assert key in message and "wrong type" in message


BOOL_FOR_NUMBER = [
    "storage.map_size_mib",
    "listen.port",
    "peers.prefecture.port",
    "links.batch_entries",
    "links.backoff_initial_s",
    "tls.handshake_timeout_s",
    "retention.moveout_keep_days",
    "daemon.drain_timeout_s",
]


@pytest.mark.parametrize("key", BOOL_FOR_NUMBER)
@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_a_number(tmp_path: Path, key: str, value: bool) -> None:
    # In Python a bool is an int (True == 1); the file must say a number where it means one.
    message = refused(tmp_path, edited(FULL, key, value))
    assert key in message and "wrong type" in message


OUT_OF_RANGE = [
    ("listen.port", -1),
    ("listen.port", 65536),
    ("peers.prefecture.port", 0),
    ("peers.national.port", 65536),
    ("storage.map_size_mib", 15),
    ("storage.map_size_mib", (1 << 20) + 1),
    ("links.max_frame_bytes", 4095),
    ("links.max_frame_bytes", (16 << 20) + 1),
    ("links.max_group", 0),
    ("links.window_entries", 0),
    ("links.batch_entries", 1025),
    ("retention.moveout_keep_days", 0),
    ("retention.moveout_keep_days", 366),
    ("daemon.drain_timeout_s", 0),
    ("daemon.drain_timeout_s", 0.099),
    ("daemon.drain_timeout_s", 300.5),
    ("daemon.drain_timeout_s", -1),
    ("daemon.drain_timeout_s", math.inf),
    ("daemon.drain_timeout_s", math.nan),
    ("tls.handshake_timeout_s", 0),
    ("tls.handshake_timeout_s", 121),
    ("tls.handshake_timeout_s", -math.inf),
    ("links.backoff_initial_s", 0),
    ("links.backoff_max_s", 3601),
    ("links.backoff_max_s", math.nan),
]


@pytest.mark.parametrize(("key", "value"), OUT_OF_RANGE)
def test_out_of_range(tmp_path: Path, key: str, value: Any) -> None:
    message = refused(tmp_path, edited(FULL, key, value))
    assert key in message and "between" in message


def test_a_peer_port_is_required_for_an_outbound_peer(tmp_path: Path) -> None:
    assert "peers.prefecture.port" in refused(tmp_path, edited(FULL, "peers.prefecture.port", delete=True))


BAD_PINS = [
    "",
    "ab" * 31,  # 62 hex characters
    "ab" * 33,
    "zz" * 32,
    ":".join(["ab"] * 32),  # colon-separated, as some tools print it
    " " + "ab" * 32,
    "ab" * 31 + "a\n",
]


@pytest.mark.parametrize("peer", ["register", "prefecture", "national"])
@pytest.mark.parametrize("pin", BAD_PINS)
def test_bad_pin(tmp_path: Path, peer: str, pin: str) -> None:
    message = refused(tmp_path, edited(FULL, f"peers.{peer}.pin_sha256", pin))
    assert f"peers.{peer}.pin_sha256" in message and "64 hex" in message


@pytest.mark.parametrize(("peer", "same_as"), [("prefecture", "register"), ("national", "register"), ("national", "prefecture")])
def test_two_peers_sharing_a_pin(tmp_path: Path, peer: str, same_as: str) -> None:
    # Case does not make two pins different: both are lower-cased first.
    pin = FULL["peers"][same_as]["pin_sha256"].lower()
    message = refused(tmp_path, edited(FULL, f"peers.{peer}.pin_sha256", pin.upper()))
    assert f"peers.{peer}.pin_sha256" in message and f"peers.{same_as}.pin_sha256" in message


UNKNOWN_KEYS = [
    ("storage.paths", "storage"),
    ("hsm.pin", "hsm"),  # the PIN does not belong in this file, and is not echoed back
    ("tls.ciphers", "tls"),
    ("listen.address", "listen"),
    ("peers.register.host", "peers.register"),  # the CS never connects to the register
    ("peers.register.port", "peers.register"),
    ("peers.prefecture.pin", "peers.prefecture"),
    ("peers.national.sever_name", "peers.national"),
    ("peers.county", "peers"),
    ("links.window", "links"),
    ("retention.keep_days", "retention"),
    ("daemon.drain_timeout", "daemon"),
    ("logging", "top level"),  # an unknown top-level table
    ("debug", "top level"),  # an unknown top-level key
]


@pytest.mark.parametrize(("key", "table"), UNKNOWN_KEYS)
def test_unknown_key_in_any_table(tmp_path: Path, key: str, table: str) -> None:
    value: Any = {"pin_sha256": "cd" * 32} if key == "peers.county" else ({"level": "debug"} if key == "logging" else "s3cret-1234")
    message = refused(tmp_path, edited(FULL, key, value))
    name = key.rsplit(".", 1)[-1]
    assert f"unknown key {name!r}" in message and f"[{table}]" in message
    assert "s3cret-1234" not in message


@pytest.mark.parametrize("table", ["storage", "hsm", "tls", "listen", "peers", "links", "retention", "daemon", "peers.register", "peers.prefecture"])
def test_a_table_given_as_a_value(tmp_path: Path, table: str) -> None:
    message = refused(tmp_path, edited(FULL, table, "x"))
    assert f"[{table}] must be a table" in message


def test_not_toml(tmp_path: Path) -> None:
    message = refused(tmp_path, to_toml(FULL) + "\n[storage\npath = 'x'\n")
    assert "not valid TOML" in message


def test_duplicate_key_is_not_toml(tmp_path: Path) -> None:
    assert "not valid TOML" in refused(tmp_path, to_toml(FULL) + '\n[daemon]\ndrain_timeout_s = 5\n')


def test_not_utf8(tmp_path: Path) -> None:
    raw = to_toml(FULL).replace("cs-ward-13110", "区役所").encode("shift_jis")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(write(tmp_path, raw))
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_utf8_text_is_fine(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, edited(FULL, "hsm.token_label", "目黒区")))
    assert config.hsm.token_label == "目黒区"


def test_oversized_file(tmp_path: Path) -> None:
    text = to_toml(FULL)
    exactly = text + "#" * (MAX_CONFIG_BYTES - len(text.encode()) - 1) + "\n"
    assert len(exactly.encode()) == MAX_CONFIG_BYTES
    load_config(write(tmp_path / "exact", exactly))  # at the limit: read
    message = refused(tmp_path / "over", exactly + "\n")
    assert "too large" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path / "nowhere.toml")


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(tmp_path)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_the_documented_example_loads(monkeypatch) -> None:
    from pathlib import Path

    from firmware_app.config import load_config

    example = Path(__file__).resolve().parents[2] / "docs" / "csd.example.toml"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/cs-appliance.service")
    config = load_config(example)
    assert config.hsm.pin_file == Path("/run/credentials/cs-appliance.service/hsm-pin")
    assert config.tls_key == Path("/run/credentials/cs-appliance.service/cs-key.pem")
    assert set(config.peers) == {"register", "prefecture", "national"}
    assert config.outbound() == {"prefecture": "prefecture", "card_system": "national"}
    assert config.drain_timeout_s == 10


def test_a_credential_path_needs_the_credentials_directory(tmp_path, monkeypatch) -> None:
    """``${CREDENTIALS_DIRECTORY}/NAME`` is the credential systemd passed to this process; without
    one the configuration is refused, naming the key."""
    from firmware_app.config import ConfigError
    from firmware_app.config_paths import config_path

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ValueError, match="no credentials were passed"):
        config_path("${CREDENTIALS_DIRECTORY}/hsm-pin", tmp_path)
    assert config_path("${CREDENTIALS_DIRECTORY}/hsm-pin", tmp_path, {"CREDENTIALS_DIRECTORY": "/run/c/u"}) == Path("/run/c/u/hsm-pin")
    assert config_path("rel/x", tmp_path, {}) == tmp_path / "rel/x"
    assert config_path("/abs/x", tmp_path, {}) == Path("/abs/x")
    assert config_path("${CREDENTIALS_DIRECTORY_X}/y", tmp_path, {}) == tmp_path / "${CREDENTIALS_DIRECTORY_X}/y"
    message = refused(tmp_path, edited(MINIMAL, "hsm.pin_file", "${CREDENTIALS_DIRECTORY}/hsm-pin"))
    assert message.startswith("hsm.pin_file names ${CREDENTIALS_DIRECTORY}")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    config = load_config(write(tmp_path, edited(MINIMAL, "hsm.pin_file", "${CREDENTIALS_DIRECTORY}/hsm-pin")))
    assert config.hsm.pin_file == tmp_path / "creds" / "hsm-pin"
    assert not issubclass(ConfigError, KeyError)
