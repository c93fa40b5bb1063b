"""`keywatch replay`: access logs and a stored run through the service's detectors, by the CLI.

The alerts path goes through real Apprise to a local JSON receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from monitor.cli import app
from monitor.collect.logfile import parse_line
from monitor.store import SQLiteStore
from tests.alert.receivers import JsonSink
from tests.configs import Account, Key, Sections, config_toml
from tests.factories import fake_secret

T = 1_785_000_000_000
MIN = 60_000
BOT_IP, STRANGER = "127.66.0.9", "127.77.0.5"


def _config(url: str) -> str:
    return config_toml({"store_path": "kw.db"}, Sections(channels=[{"name": "pager", "url": url}]),
                       [Account("main", "monitor", [
                           Key("monitor", "monitoring", "KW_TEST_KEY", "KW_TEST_SECRET"),
                           Key("grid-bot", "spot-bot", ip_whitelist=[BOT_IP],
                               client_order_prefixes=["grid1-"])])])


ENV = {"KW_TEST_KEY": fake_secret("key"), "KW_TEST_SECRET": fake_secret("secret")}


def _line(i: int, ip: str, **kw: object) -> str:
    d = {"ts": T + i * MIN // 4, "method": "GET", "endpoint": "/api/v3/account", "status": 200,
         "ip": ip, "key": "grid-bot"}
    d.update(kw)
    return json.dumps(d) + "\n"


def _files(tmp_path: Path, url: str = "json://127.0.0.1:9/") -> tuple[Path, Path]:
    cfg = tmp_path / "keywatch.toml"
    cfg.write_text(_config(url))
    log = tmp_path / "grid.jsonl"
    lines = [_line(i, BOT_IP) for i in range(40)]
    lines.insert(20, "this is not json\n")
    lines.append(_line(41, STRANGER))
    log.write_text("".join(lines))
    return cfg, log


def _replay(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["replay", *args], env=ENV)
    return res.exit_code, res.stdout, res.stderr


def test_replay_of_an_access_log_finds_the_stranger_and_counts_the_bad_line(
        tmp_path: Path) -> None:
    cfg, log = _files(tmp_path)
    code, out, err = _replay(str(log), "-c", str(cfg), "--json")
    assert code == 0, err
    found = [json.loads(x) for x in out.splitlines() if x.strip()]
    callers = [f for f in found if f["rule_id"] == "unknown_ip.new_caller"]
    assert [f["group"].get("ip") for f in callers] == [STRANGER]  # the bot's own IP is known
    assert callers[0]["key"] == "grid-bot" and callers[0]["account"] == "main"
    assert "read 41 events from 42 lines (1 bad)" in err
    assert f"{log}:21: not JSON" in err


def test_replay_of_a_store_gives_what_the_log_gave(tmp_path: Path) -> None:
    cfg, log = _files(tmp_path)
    store = SQLiteStore(tmp_path / "past.db")
    events = []
    for raw in log.read_text().splitlines():
        if raw.startswith("{"):
            events.append(parse_line(raw, "main", T))
    store.insert_events(events)
    store.close()
    code, out, err = _replay("--store", str(tmp_path / "past.db"), "-c", str(cfg), "--json")
    assert code == 0, err
    from_store = sorted(json.loads(x)["rule_id"] for x in out.splitlines() if x.strip())
    _c, out_log, _e = _replay(str(log), "-c", str(cfg), "--json")
    assert from_store == sorted(json.loads(x)["rule_id"] for x in out_log.splitlines()
                                if x.strip())
    assert "unknown_ip.new_caller" in from_store


def test_replay_with_alerts_delivers_through_apprise(tmp_path: Path) -> None:
    async def go() -> tuple[int, str, JsonSink]:
        sink = await JsonSink().start()
        cfg, log = _files(tmp_path, sink.url)
        try:
            code, _out, err = await asyncio.to_thread(_replay, str(log), "-c", str(cfg),
                                                      "--alerts")
        finally:
            await sink.stop()
        return code, err, sink

    code, err, sink = asyncio.run(go())
    assert code == 0, err
    assert "alerts: 1 delivered, 0 left" in err
    assert len(sink.received) == 1 and STRANGER in json.dumps(sink.received[0])


def test_replay_without_input_or_with_a_missing_log_is_one_line(tmp_path: Path) -> None:
    cfg, _log = _files(tmp_path)
    code, _out, err = _replay("-c", str(cfg))
    assert code == 2 and "name one or more access logs" in err
    code, _out, err = _replay(str(tmp_path / "nope.jsonl"), "-c", str(cfg))
    assert code == 2 and "not a readable file" in err and "Traceback" not in err
