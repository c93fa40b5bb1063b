"""The shared config builder (`tests/configs.py`) writes what `load_config` reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from tests.configs import Account, Key, Sections, config_toml, sim_config, value


def test_the_built_toml_loads_as_the_config_it_describes(tmp_path: Path) -> None:
    (tmp_path / "k.toml").write_text(config_toml(
        {"store_path": tmp_path / "kw.db"},
        Sections(sources={"poll_interval_s": 7}, tap={"enabled": True, "listen": "127.0.0.1:9"},
                 logs=[{"path": "/var/log/bot.jsonl", "account": "main"}],
                 channels=[{"name": "pager", "url": "json://127.0.0.1:1/", "tags": ["critical"]}]),
        [Account("main", "mon", [Key("mon", "monitoring", "A", "B", ["127.0.0.1"]),
                                 Key("bot", "spot-bot", "C", client_order_prefixes=["b-"])],
                 symbols=["ETHUSDT"])]))
    cfg = load_config(tmp_path / "k.toml", env={"A": "a" * 64, "B": "b" * 64, "C": "c" * 64})
    assert cfg.store_path == str(tmp_path / "kw.db")
    assert cfg.sources.poll_interval_s == 7 and cfg.sources.tap.listen == "127.0.0.1:9"
    assert [log.path for log in cfg.sources.logs] == ["/var/log/bot.jsonl"]
    assert [(c.name, c.tags) for c in cfg.alerts.channels] == [("pager", ["critical"])]
    (acct,) = cfg.accounts
    assert (acct.name, acct.monitor_key, acct.symbols) == ("main", "mon", ["ETHUSDT"])
    mon, bot = acct.keys
    assert mon.ip_whitelist == ["127.0.0.1/32"] and mon.api_secret is not None
    assert bot.client_order_prefixes == ["b-"] and bot.api_secret is None


def test_sim_config_writes_the_env_its_keys_name(tmp_path: Path) -> None:
    class Sim:
        rest_url, ws_api_url = "http://127.0.0.1:1", "ws://127.0.0.1:1/ws-api/v3"

    keys = {"keywatch": ("k" * 64, "s" * 64), "bot": ("b" * 64, "x" * 64)}
    path = sim_config(tmp_path, Sim(), keys, bot=Key("bot", "spot-bot", "KW_BOT_KEY"),
                      sources={}, channel={"name": "down", "url": "json://127.0.0.1:1/",
                                           "tags": ["critical"]})
    cfg = load_config(path, env={})  # secrets only from the .env beside it
    mon, bot = cfg.accounts[0].keys
    assert mon.api_secret is not None and mon.api_secret.get_secret_value() == "s" * 64
    assert bot.api_key is not None and bot.api_key.get_secret_value() == "b" * 64
    assert cfg.binance.rest_url == Sim.rest_url


def test_a_value_toml_cannot_hold_is_refused() -> None:
    assert value([1, "a", True]) == '[1, "a", true]'
    with pytest.raises(TypeError):
        value({"nested": 1})
