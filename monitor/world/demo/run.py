"""The demo, end to end: a scripted day on the simulator, watched by the real service.

Nothing is faked between the attack and the alert: the scenario's bots and attackers are real
HTTP clients on their own loopback addresses, the service's collector polls and streams from
the simulator and proxies the bots through its tap, detection runs the shipped rules and model,
and alerts leave through Apprise to a local webhook that prints them. The run directory keeps
the config, the `.env` (simulator keys only), the event database and the ground truth, so the
notebooks can open the incident afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.collect.collector import Collector
from monitor.collect.ingest import OnEvents
from monitor.config import Config, load_config
from monitor.core import resources
from monitor.core.clock import AcceleratedClock
from monitor.core.findings import Finding
from monitor.service.metrics import Metrics
from monitor.service.pipeline import Service, build_engine
from monitor.store import SQLiteStore
from monitor.world.demo.ports import HOST, DemoPorts
from monitor.world.demo.receiver import AlertReceiver, Received
from monitor.world.evaluate.score import EXPECTED
from monitor.world.groundtruth import Episode, GroundTruth
from monitor.world.sim import load_scenario
from monitor.world.sim.scenario import Scenario

HOST_IP = "127.0.0.2"  # the bots' host; Keywatch runs there too, as it would on a bot VPS

GRACE_MS = 10 * 60_000


@dataclass
class Catch:
    episode: Episode
    alert_id: str | None = None
    rule_id: str | None = None
    signal: str | None = None
    delay_ms: int | None = None


@dataclass
class DemoResult:
    run_dir: Path
    db_path: Path
    config_path: Path
    truth: GroundTruth
    catches: list[Catch]
    received: list[Received]
    signals_alerted: set[str] = field(default_factory=set)
    events: int = 0

    @property
    def ok(self) -> bool:
        return all(c.alert_id is not None for c in self.catches)


def _use_case(permissions: list[str]) -> str:
    if "enableFutures" in permissions:
        return "futures-bot"
    if "enableSpotAndMarginTrading" in permissions:
        return "spot-bot"
    return "monitoring"


def write_config(run_dir: Path, urls: tuple[str, str], sc: Scenario, receiver_url: str,
                 keys: dict[tuple[str, str], tuple[str, str]], monitor: tuple[str, str],
                 speed: float, tap_port: int = 0) -> Path:
    """A real TOML config and a 0600 `.env`, loaded through the same path a user's would be."""
    env: dict[str, str] = {}
    lines = [
        "# Written by `keywatch demo`: simulator addresses and keys, not a real account.",
        f'store_path = "{run_dir / "keywatch.db"}"',
        f'rules_dir = "{resources.rules_dir()}"',
        f'model_path = "{resources.default_model()}"',
        f'egress_ip = "{HOST_IP}"',
        "[binance]",
        f'rest_url = "{urls[0]}"',
        f'ws_api_url = "{urls[1]}"',
        f"recv_window_ms = {60000 if speed > 20 else 5000}",
        "[sources]",
        "poll_interval_s = 60",
        "[sources.tap]",
        "enabled = true",
        f'listen = "{HOST}:{tap_port}"',
        f'upstream = "{urls[0]}"',
        f'account = "{next(iter(sc.accounts))}"',
        "[alerts]",
        "group_wait_s = 10",
        "[[alerts.channels]]",
        'name = "demo-webhook"',
        f'url = "{receiver_url}"',
        'tags = ["critical", "digest"]',
    ]
    prefixes: dict[tuple[str, str], list[str]] = {}
    for bot in sc.bots:
        if bot.order_prefixes is not None:  # a client library's bot: what its owner declared
            prefixes.setdefault((bot.account, bot.key), []).extend(bot.order_prefixes)
        elif bot.kind in ("grid", "dca"):
            prefixes.setdefault((bot.account, bot.key), []).append(f"{bot.name}-")
    for account, spec in sc.accounts.items():
        lines += ["[[accounts]]", f'name = "{account}"', 'monitor_key = "keywatch"']
        entries = [("keywatch", ["enableReading"], [HOST_IP], monitor, True)]
        for label, kspec in spec.keys.items():
            # read-only keys hand their secret to Keywatch for posture polling; trading keys
            # only their API key, which lets the tap recognise their calls
            read_only = kspec.permissions == ["enableReading"]
            entries.append((label, kspec.permissions, kspec.ip_whitelist or [],
                            keys[(account, label)], read_only))
        for label, perms, whitelist, (api_key, secret), with_secret in entries:
            var = f"KW_DEMO_{account}_{label}".upper().replace("-", "_")
            env[f"{var}_KEY"] = api_key
            lines += [
                "[[accounts.keys]]", f'label = "{label}"',
                f'use_case = "{_use_case(perms) if label != "keywatch" else "monitoring"}"',
                f'api_key_env = "{var}_KEY"',
                f"ip_whitelist = {list(whitelist)!r}".replace("'", '"'),
                f"client_order_prefixes = {prefixes.get((account, label), [])!r}".replace(
                    "'", '"'),
            ]
            if with_secret:
                env[f"{var}_SECRET"] = secret
                lines.append(f'api_secret_env = "{var}_SECRET"')
    path = run_dir / "keywatch.toml"
    path.write_text("\n".join(lines) + "\n")
    dotenv = run_dir / ".env"
    fd = os.open(dotenv, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def judge(truth: GroundTruth, received: list[Received], store: SQLiteStore) -> list[Catch]:
    """For each injected episode: the first alert whose findings say what that attack is."""
    findings = {f.finding_id: f for f in store.load_findings()}
    catches = []
    for ep in truth.episodes:
        catch = Catch(ep)
        for rec in sorted(received, key=lambda r: r.at_ms):
            hit = _first_match(ep, rec, store, findings)
            if hit is not None:
                catch.alert_id, f = hit
                catch.rule_id, catch.signal = f.rule_id, f.signal.value
                catch.delay_ms = max(0, rec.at_ms - ep.start_ms)
                break
        catches.append(catch)
    return catches


def _first_match(ep: Episode, rec: Received, store: SQLiteStore,
                 findings: dict[str, Finding]) -> tuple[str, Finding] | None:
    for alert_id in rec.alert_ids:
        alert = store.load_alert(alert_id)
        if alert is None:
            continue
        for item in alert.payload.items:
            f = findings.get(item.finding_id)
            if f is None or f.state != "firing" or f.account != ep.account:
                continue
            if f.key is not None and ep.key is not None and f.key != ep.key:
                continue
            if not ep.start_ms <= f.ts <= ep.end_ms + GRACE_MS:
                continue
            if f.signal in EXPECTED[ep.type]:
                return alert_id, f
    return None


async def run_demo(
    *, scenario: str = "demo", speed: float = 120.0, seed: int = 7,
    out: Path = Path("runs"), say: Callable[[str], None] = print,
    on_alert: Callable[[Received], None] | None = None,
    on_tick: Callable[[float], None] | None = None, ports: DemoPorts | None = None,
) -> DemoResult:
    """`ports`: where each server listens (DemoPorts(): every port free, chosen at start)."""
    ports = ports or DemoPorts()
    ports.check_free()
    sc = load_scenario(scenario)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = (out / f"demo-{stamp}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    clock = AcceleratedClock(speed)
    start_ms, anchor = clock.anchor
    account = next(iter(sc.accounts))
    world = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.world.demo.world", "--scenario", scenario, "--speed",
        str(speed), "--seed", str(seed), "--start-ms", str(start_ms), "--anchor", repr(anchor),
        "--out", str(run_dir), "--key", f"{account}/keywatch/{HOST_IP}",
        "--port", str(ports.sim), "--stream-port", str(ports.stream),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    receiver = AlertReceiver(clock, on_alert=on_alert, host=HOST, port=ports.receiver)
    await receiver.start()
    try:
        ready = (await _message(world))["ready"]
        keys = {tuple(k.split("/", 1)): tuple(v) for k, v in ready["keys"].items()}
        monitor = keys.pop((account, "keywatch"))
        urls = (ready["rest_url"], ready["ws_api_url"])
        cfg_path = write_config(run_dir, urls, sc, receiver.url, keys, monitor, speed,
                                tap_port=ports.tap)
        cfg = load_config(cfg_path)
        say(f"simulator on {urls[0]} (REST and WebSocket API), market streams on "
            f"{ready['stream_url']} ({speed:g}x, own process); run directory {run_dir}")
        say(f"alert webhook on http://{HOST}:{receiver.port}/ (Apprise {receiver.url})")
        result = await _watch(cfg, cfg_path, clock, world, sc, run_dir, say, on_tick,
                              health_port=ports.health)
        result.received = list(receiver.received)
        store = SQLiteStore(cfg.store_path)
        result.catches = judge(result.truth, result.received, store)
        result.signals_alerted = {
            f.signal.value for f in store.load_findings() if f.state == "firing"
        }
        result.events = store.count_events()
        store.close()
        return result
    finally:
        await receiver.stop()
        if world.returncode is None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                assert world.stdin is not None
                world.stdin.write(b'{"stop": true}\n')
                await world.stdin.drain()
            try:
                await asyncio.wait_for(world.wait(), 10)
            except TimeoutError:
                world.kill()
                await world.wait()


async def _message(world: asyncio.subprocess.Process) -> dict[str, Any]:
    assert world.stdout is not None
    line = await world.stdout.readline()
    if not line:
        raise RuntimeError(f"the simulator process ended early (exit {await world.wait()})")
    return dict(json.loads(line))


async def _send(world: asyncio.subprocess.Process, obj: dict[str, Any]) -> None:
    assert world.stdin is not None
    world.stdin.write((json.dumps(obj) + "\n").encode())
    await world.stdin.drain()


async def _watch(cfg: Config, cfg_path: Path, clock: AcceleratedClock,
                 world: asyncio.subprocess.Process, sc: Scenario, run_dir: Path,
                 say: Callable[[str], None], on_tick: Callable[[float], None] | None,
                 *, health_port: int = 0) -> DemoResult:
    store = SQLiteStore(cfg.store_path)
    engine = build_engine(cfg)
    metrics = Metrics()  # one registry, as `keywatch run` has: the collector feeds /metrics

    def collector(on_events: OnEvents) -> Collector:
        return Collector(cfg, store, clock, on_events=on_events, local_host=HOST_IP,
                         metrics=metrics)

    service = Service(cfg, store, clock, source_factory=collector, engine=engine,
                      metrics=metrics, health_port=health_port, health_host=HOST)
    stop = asyncio.Event()
    svc = asyncio.create_task(service.run(stop))
    health = service.health
    assert health is not None
    while (service.source is None or getattr(service.source, "tap_url", None) is None
           or not health.port or not await _accepts(HOST, health.port)):
        if svc.done():
            svc.result()
            raise RuntimeError("the service stopped before its tap and health were listening")
        await asyncio.sleep(0.02)
    tap_url = service.source.tap_url  # type: ignore[attr-defined]
    say(f"service up: tap {tap_url}, health and metrics on http://{HOST}:{health.port} "
        f"(/healthz, /metrics), account stream {cfg.binance.ws_api_url}")
    start = clock.now_ms()
    ticker = asyncio.create_task(_progress(clock, start, sc.duration, on_tick))
    try:
        await _send(world, {"tap_url": tap_url})
        while True:
            msg = await _message(world)
            if "progress" in msg:
                say(str(msg["progress"]))
            elif "done" in msg:
                truth = GroundTruth.load(str(msg["done"]))
                break
        # let the last windows close and the last groups wait out before stopping
        await clock.sleep(180)
    finally:
        ticker.cancel()
        stop.set()
        await asyncio.wait_for(svc, timeout=30)
    store.close()
    return DemoResult(run_dir=run_dir, db_path=Path(cfg.store_path), config_path=cfg_path,
                      truth=truth, catches=[], received=[])


async def _accepts(host: str, port: int) -> bool:
    """True once something accepts a connection on host:port (the health server is up)."""
    try:
        _reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def _progress(clock: AcceleratedClock, start: int, duration_s: float,
                    on_tick: Callable[[float], None] | None) -> None:
    while on_tick is not None:
        on_tick(min(1.0, (clock.now_ms() - start) / (duration_s * 1000)))
        await asyncio.sleep(0.25)
