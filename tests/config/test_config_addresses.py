"""Host and port values are checked at load: a listen address this host cannot bind, a port
out of range or a garbage egress address is one line naming the field, not a crash loop of
every source at start."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import ConfigError, TapConfig, load_config
from tests.config.configkit import ENV, check_config, toml_str, write_config


@pytest.mark.parametrize("listen, expected", [
    ("nohost:8765", "'nohost' is not an IP address or a name this host resolves"),
    ("nohost", "is not HOST:PORT"),
    ("127.0.0.1:70000", "port '70000' is not a number from 0 to 65535"),
    ("127.0.0.1:http", "port 'http' is not a number"),
    ("192.0.2.1:8765", "'192.0.2.1' is not an address of this host"),
    ("[::1]:8765", "listen on an IPv4 address or a name"),
])
def test_a_bad_listen_value_is_one_line_naming_the_field(tmp_path: Path, listen: str,
                                                         expected: str) -> None:
    path = write_config(tmp_path, tap=f'listen = "{listen}"')
    with pytest.raises(ConfigError) as err:
        load_config(path, env=ENV)
    (problem,) = err.value.problems
    assert problem.startswith("sources.tap.listen: ") and expected in problem, problem


def test_check_config_refuses_nohost_without_a_traceback(tmp_path: Path) -> None:
    result = check_config(write_config(tmp_path, tap='listen = "nohost"'))
    assert result.exit_code == 1
    assert "sources.tap.listen" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("top, field", [
    ('egress_ip = "my-home-ip"', "egress_ip: "),
    ('egress_ip = "203.0.113.999"', "egress_ip: "),
    ('[binance]\nrest_url = "https://:443"', "binance.rest_url: "),
    ('[binance]\nrest_url = "https://api.binance.com:99999"', "binance.rest_url: "),
    ('[binance]\nsource_address = "192.0.2.77"', "binance.source_address: "),
])
def test_garbage_addresses_are_refused_naming_the_field(tmp_path: Path, top: str,
                                                        field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, top=top), env=ENV)
    (problem,) = err.value.problems
    assert problem.startswith(field), problem


def test_good_addresses_load(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, top='egress_ip = "203.0.113.10"',
                                   tap='source_address = "127.0.0.7"'), env=ENV)
    assert cfg.egress_ip == "203.0.113.10" and cfg.sources.tap.source_address == "127.0.0.7"
    assert TapConfig(listen="localhost:0").listen == "localhost:0"
    # the shape is checked anywhere; whether this host has the address, only at load
    assert TapConfig(listen="192.0.2.1:8765").listen == "192.0.2.1:8765"


HOSTS = st.one_of(
    st.sampled_from(["127.0.0.1", "localhost", "nohost", "0.0.0.0", "192.0.2.1", "", "::1",
                     "127.0.0.1.", "a..b", "-x"]),
    st.text(st.characters(codec="ascii"), max_size=12),
)
PORTS = st.one_of(st.integers(-5, 70000).map(str), st.text(max_size=4))


@settings(max_examples=60, deadline=None)
@given(HOSTS, PORTS)
def test_any_listen_value_is_refused_in_one_line_or_can_be_bound(host: str, port: str) -> None:
    value = f"{host}:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        path = write_config(Path(tmp), tap=f"listen = {toml_str(value)}")
        try:
            cfg = load_config(path, env=ENV)
        except ConfigError as exc:
            (problem,) = exc.problems
            assert problem.startswith("sources.tap.listen: ") and "\n" not in problem
            return
    h, _, p = cfg.sources.tap.listen.rpartition(":")
    with socket.socket() as sock:  # what the collector will do with it: bind, not crash
        sock.bind((h, 0))
    assert 0 <= int(p) <= 65535
