"""Metrics that are true: every series the README lists exists, starts at 0 for what the config
names, and moves where its fact happens; promtool accepts the scrape, the rules and the dashboard.

The end-to-end check runs `keywatch run` as a subprocess against the simulator (the harness of
tests/service/test_service.py) with one channel that cannot deliver (json:// to a closed port)
and one that can (a loopback JSON sink), the tap enabled, and a dropped user-data stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import load_config
from monitor.core.events import Kind, Source
from monitor.core.findings import Severity
from monitor.service.metrics import SOURCE_KINDS, UNKNOWN_KEY, Metrics
from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient
from tests.alert.receivers import JsonSink
from tests.configs import Account, Key, Sections, config_toml
from tests.factories import full_event
from tests.service.test_service import BOT_IP, free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus-rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian package `prometheus`: apt-get install "
           "--no-install-recommends prometheus; `make test` installs it when run as root)",
)
COMPONENTS = ("collector", "detector", "notifier", "heartbeat", "health")
PYTHON = ".".join(map(str, sys.version_info[:3]))


# -- reading an exposition ---------------------------------------------------------------------
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(scrape: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in scrape, f"{name}{labels} is not exported"
    return scrape[key]


def series_names(text: str) -> set[str]:
    """Names as the exposition declares them (`# TYPE`), without the `_created` companions."""
    names = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    return {n for n in names if not n.endswith("_created")}


def readme_series() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("Health and metrics (`--health-port`)")
    para = readme[start:readme.index("\n\n", start)]
    return set(re.findall(r"`(keywatch_[a-z0-9_]+)`", para))


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


# -- unit: priming and hooks -------------------------------------------------------------------
CONFIG = config_toml(
    {"rules_dir": ROOT / "rules"},
    Sections(tap={"enabled": True, "upstream": "http://127.0.0.1:1"},
             logs=[{"path": "/var/log/bot.jsonl", "account": "main"}],
             channels=[{"name": "pager", "url": "json://127.0.0.1:1/"}]),
    [Account("main", "mon", [Key("mon", "monitoring", "A", "B"),
                             Key("grid-bot", "spot-bot", "C")])])


def primed(tmp_path: Path) -> Metrics:
    (tmp_path / "k.toml").write_text(CONFIG)
    cfg = load_config(tmp_path / "k.toml", env={"A": "a" * 64, "B": "b" * 64, "C": "c" * 64})
    m = Metrics()
    m.prime(cfg, rules=["foreign.order", "forest.anomaly"], channels=["pager"],
            components=COMPONENTS)
    return m


def test_prime_creates_every_labelled_series_at_zero(tmp_path):
    m = primed(tmp_path)
    s = samples(generate_latest(m.registry).decode())
    for source, kinds in SOURCE_KINDS.items():
        assert value(s, "keywatch_last_event_timestamp_seconds", source=source.value) == 0
        for kind in kinds:
            assert value(s, "keywatch_events_total", source=source.value, kind=kind.value) == 0
    for rule in ("foreign.order", "forest.anomaly"):
        assert value(s, "keywatch_findings_total", rule=rule) == 0
    for sev in Severity:
        assert value(s, "keywatch_findings_by_severity_total", severity=sev.value) == 0
    assert value(s, "keywatch_alerts_sent_total", channel="pager") == 0
    assert value(s, "keywatch_alerts_failed_total", channel="pager") == 0
    assert value(s, "keywatch_stream_reconnects_total", account="main") == 0
    assert value(s, "keywatch_api_weight_used_1m", account="main") == 0
    for pool in ("api", "sapi_ip", "sapi_uid"):
        assert value(s, "keywatch_api_weight_spent_total", account="main", pool=pool) == 0
    for key in ("mon", "grid-bot", UNKNOWN_KEY):
        assert value(s, "keywatch_tap_requests_total", account="main", key=key) == 0
    for q in ("ingest", "detection"):
        assert value(s, "keywatch_queue_drops_total", queue=q) == 0
    for c in COMPONENTS:
        assert value(s, "keywatch_component_restarts_total", component=c) == 0
    info = [dict(k[1]) for k in s if k[0] == "keywatch_build_info"]
    assert len(info) == 1 and info[0]["python"] == PYTHON and info[0]["version"]


def test_readme_lists_exactly_the_exported_series(tmp_path):
    exported = series_names(generate_latest(primed(tmp_path).registry).decode())
    assert readme_series() == exported


def test_hooks_move_the_right_series(tmp_path):
    m = primed(tmp_path)
    ev = full_event(1)  # a tap record of grid-bot's order
    assert ev.source is Source.TAP
    late = ev.model_copy(update={"received_ts": ev.received_ts - 60_000})
    m.events_stored([ev])
    m.events_stored([late])  # an older batch never moves the newest-event time backwards
    m.tap_recorded([ev, ev.model_copy(update={"key": None})])
    api = ev.model_copy(update={"source": Source.REST, "kind": Kind.USAGE,
                                "endpoint": "/api/v3/account", "weight_1m": 37})
    sapi = api.model_copy(update={"endpoint": "/sapi/v1/account/apiRestrictions",
                                  "weight_1m": 1})
    m.own_usage([api, sapi])  # the SAPI pool's count must not overwrite the /api weight
    m.weight_spent("main", "api", 20)
    m.delivery("pager", False)
    m.delivery("pager", False)
    m.stream_reconnect("main")
    m.queue_dropped("ingest", 3)
    s = samples(generate_latest(m.registry).decode())
    assert value(s, "keywatch_events_total", source="tap", kind=ev.kind.value) == 2
    assert value(s, "keywatch_last_event_timestamp_seconds", source="tap") == (
        ev.received_ts / 1000)
    assert value(s, "keywatch_tap_requests_total", account="main", key="grid-bot") == 1
    assert value(s, "keywatch_tap_requests_total", account="main", key=UNKNOWN_KEY) == 1
    assert value(s, "keywatch_api_weight_used_1m", account="main") == 37
    assert value(s, "keywatch_api_weight_spent_total", account="main", pool="api") == 20
    assert value(s, "keywatch_alerts_failed_total", channel="pager") == 2
    assert value(s, "keywatch_alerts_sent_total", channel="pager") == 0
    assert value(s, "keywatch_stream_reconnects_total", account="main") == 1
    assert value(s, "keywatch_queue_drops_total", queue="ingest") == 3


async def test_metrics_endpoint_refreshes_state_gauges_at_scrape():
    """`/metrics` runs its refresh first: a gauge read from state is as of the scrape."""
    from monitor.service.health import HealthServer, build_app

    m = Metrics()
    backlog = iter(range(1, 100))
    server = HealthServer(build_app(m, lambda: {"ok": True},
                                    refresh=lambda: m.outbox_backlog.set(next(backlog))))
    stop = asyncio.Event()
    task = asyncio.create_task(server.run(stop))
    try:
        while server.port == 0:
            assert not task.done()
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            assert "keywatch_outbox_backlog 1.0" in (await http.get("/metrics")).text
            assert "keywatch_outbox_backlog 2.0" in (await http.get("/metrics")).text
    finally:
        stop.set()
        await task


# -- end to end: the real service against the simulator -----------------------------------------
WAIT_FOR = (  # the facts the run provokes, each counted at least once
    ("keywatch_events_total", {"source": "stream", "kind": "order"}),
    ("keywatch_findings_total", {"rule": "foreign.order"}),
    ("keywatch_alerts_failed_total", {"channel": "down"}),
    ("keywatch_alerts_sent_total", {"channel": "ok"}),
    ("keywatch_stream_reconnects_total", {"account": "main"}),
    ("keywatch_tap_requests_total", {"account": "main", "key": "bot"}),
    ("keywatch_tap_requests_total", {"account": "main", "key": UNKNOWN_KEY}),
    ("keywatch_api_weight_used_1m", {"account": "main"}),
)


@dataclass
class Run:
    early: str  # the first scrape, before any finding
    late: str  # after findings, deliveries, tap requests and a dropped stream
    now_s: float
    output: str
    returncode: int | None


async def _run_service(tmp_path: Path) -> Run:
    from monitor.core.clock import SystemClock

    clock = SystemClock()
    ok_sink = await JsonSink().start()
    async with Simulator(clock=clock) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 100000, "BTC": 1})
        keys = {
            "keywatch": c.create_key("main", "keywatch", permissions={"enableReading": True},
                                     ip_whitelist=["127.0.0.1"]),
            "bot": c.create_key("main", "bot", permissions={
                "enableReading": True, "enableSpotAndMarginTrading": True},
                ip_whitelist=[BOT_IP]),
        }
        cfg = write_config(tmp_path, sim, keys)  # channel "down": json:// to a closed port
        tap_port = free_port()
        cfg.write_text(cfg.read_text() + f"""
[[alerts.channels]]
name = "ok"
url = "{ok_sink.url}"
[sources.tap]
enabled = true
listen = "127.0.0.1:{tap_port}"
upstream = "{sim.rest_url}"
""")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KW_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(cfg), "--health-port",
             str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        bot = ActorClient(sim.rest_url, BOT_IP, *keys["bot"], clock)
        base = f"http://127.0.0.1:{port}"
        out = ""
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(300):  # the service up and its stream subscribed
                    try:
                        health = (await http.get(f"{base}/healthz")).json()
                        if health["sources"]["stream"]["main"]["frames"] >= 0:
                            break
                    except (httpx.HTTPError, ValueError, KeyError):
                        pass
                    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                    await asyncio.sleep(0.1)
                early = (await http.get(f"{base}/metrics")).text
                # as tests/service/test_service.py: the subscription is live
                await asyncio.sleep(1.0)
                # a foreign order: stream event -> finding -> one delivery per channel
                r = await bot.signed("POST", "/api/v3/order", {
                    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.01", "price": "20000", "newClientOrderId": "evil-1"})
                assert r.status_code == 200, r.text
                # through the tap: one request with the bot's key, one with none
                tap = f"http://127.0.0.1:{tap_port}"
                await http.get(f"{tap}/api/v3/time", headers={"X-MBX-APIKEY": keys["bot"][0]})
                await http.get(f"{tap}/api/v3/time")
                late = ""
                for i in range(300):
                    if i == 20:
                        c.drop_streams()  # the stream must reconnect, and be counted
                    late = (await http.get(f"{base}/metrics")).text
                    s = samples(late)
                    if i > 20 and all(s.get((name, frozenset(labels.items())), 0) >= 1
                                      for name, labels in WAIT_FOR):
                        break
                    await asyncio.sleep(0.1)
                now_s = time.time()
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.to_thread(proc.communicate, None, 15)
        finally:
            await bot.aclose()
            await ok_sink.stop()
            if proc.poll() is None:
                proc.kill()
                out = proc.communicate()[0]
    return Run(early, late, now_s, out, proc.returncode)


@pytest.fixture(scope="module")
def service_run(tmp_path_factory) -> Run:
    return asyncio.run(_run_service(tmp_path_factory.mktemp("metrics")))


def test_real_service_exports_every_readme_series_with_true_values(service_run):
    run = service_run
    assert run.returncode == 0, run.output
    assert readme_series() <= series_names(run.late)
    early, s = samples(run.early), samples(run.late)
    # zero-initialised before their first fact
    assert value(early, "keywatch_alerts_failed_total", channel="down") == 0
    assert value(early, "keywatch_alerts_sent_total", channel="ok") == 0
    assert value(early, "keywatch_findings_total", rule="foreign.order") == 0
    assert value(early, "keywatch_tap_requests_total", account="main", key="bot") == 0
    assert value(early, "keywatch_stream_reconnects_total", account="main") == 0
    for sev in Severity:
        assert value(early, "keywatch_findings_by_severity_total", severity=sev.value) == 0
    # data came in, by source
    assert value(s, "keywatch_events_total", source="stream", kind="order") >= 1
    assert value(s, "keywatch_events_total", source="rest", kind="usage") >= 1
    assert value(s, "keywatch_events_total", source="tap", kind="request") >= 2
    for source in ("rest", "stream", "tap"):
        ts = value(s, "keywatch_last_event_timestamp_seconds", source=source)
        assert run.now_s - 120 < ts <= run.now_s + 1, source
    # findings, and their alert: failed on the dead channel, delivered on the live one
    assert value(s, "keywatch_findings_total", rule="foreign.order") >= 1
    by_rule = sum(v for (n, _), v in s.items() if n == "keywatch_findings_total")
    by_severity = sum(v for (n, _), v in s.items() if n == "keywatch_findings_by_severity_total")
    assert by_rule == by_severity >= 1
    assert value(s, "keywatch_detection_latency_seconds_count") >= 1
    assert value(s, "keywatch_alerts_failed_total", channel="down") >= 1
    assert value(s, "keywatch_alerts_sent_total", channel="down") == 0
    assert value(s, "keywatch_alerts_sent_total", channel="ok") >= 1
    assert value(s, "keywatch_alerts_failed_total", channel="ok") == 0
    assert value(s, "keywatch_outbox_backlog") >= 1  # the dead channel's delivery waits
    # the stream, Binance's weight, the tap
    assert value(s, "keywatch_stream_reconnects_total", account="main") >= 1
    assert value(s, "keywatch_api_weight_used_1m", account="main") > 0
    assert value(s, "keywatch_api_weight_spent_total", account="main", pool="api") > 0
    assert value(s, "keywatch_api_weight_spent_total", account="main", pool="sapi_ip") > 0
    assert value(s, "keywatch_tap_requests_total", account="main", key="bot") == 1
    assert value(s, "keywatch_tap_requests_total", account="main", key=UNKNOWN_KEY) == 1
    # nothing crashed or overflowed, and those series exist at 0
    for comp in COMPONENTS:
        assert value(s, "keywatch_component_restarts_total", component=comp) == 0
    for q in ("ingest", "detection"):
        assert value(s, "keywatch_queue_drops_total", queue=q) == 0
    (info,) = [dict(k[1]) for k in s if k[0] == "keywatch_build_info"]
    assert info["version"] and info["python"] == PYTHON


# -- promtool ----------------------------------------------------------------------------------
@needs_promtool
def test_promtool_accepts_a_real_scrape(service_run):
    for scrape in (service_run.early, service_run.late):
        proc = promtool("check", "metrics", stdin=scrape)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_promtool
def test_promtool_accepts_the_rules_and_their_unit_tests():
    proc = promtool("check", "rules", str(RULES))
    assert proc.returncode == 0 and "SUCCESS: 4 rules found" in proc.stdout, (
        proc.stdout + proc.stderr)
    proc = promtool("test", "rules", str(RULES_TEST))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_and_rules_name_only_exported_series(tmp_path):
    exported = series_names(generate_latest(primed(tmp_path).registry).decode())
    suffixes = ("_bucket", "_count", "_sum")
    used = set(re.findall(r"\bkeywatch_[a-z0-9_]+", RULES.read_text()))
    for expr in dashboard_exprs():
        used |= set(re.findall(r"\bkeywatch_[a-z0-9_]+", expr))
    unknown = {n for n in used if n not in exported
               and not any(n.endswith(x) and n[:-len(x)] in exported for x in suffixes)}
    assert used and unknown == set()
    on_dashboard = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert exported - on_dashboard == set()  # every series has a panel


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path):
    """Each panel's PromQL, with Grafana's variables filled in, as a recording rule."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, expr in enumerate(dashboard_exprs()):
        expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        lines += [f"      - record: dashboard:panel_{i}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    proc = promtool("check", "rules", str(rules))
    assert proc.returncode == 0, proc.stdout + proc.stderr
