"""`keywatch run`: the service, with its start-up checks (`keywatch audit` is in audit.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import typer

from monitor.config import Config, ConfigError, KeyConfig, load_config

# PRIVILEGED: the flags a read-only monitor key must not have (the key record's definition)
from monitor.core.keyrestrictions import PRIVILEGED
from monitor.core.wirefields import JsonObject

log = logging.getLogger("keywatch.run")


def _load(config: Path) -> Config:
    try:
        return load_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None


def _refuse_unusable_store(config: Path, cfg: Config) -> None:
    """A store that cannot be written is one line and exit 2, before any network call: the
    verdict is check-config's (`store_problems`), so the two commands never disagree. Not a
    skippable start-up check: without its store the service cannot run at all."""
    from monitor.config import store_problems

    problems = store_problems(cfg)
    for p in problems:
        typer.echo(f"refusing to start: {config}: {p}", err=True)
    if problems:
        raise typer.Exit(code=2)


async def key_flags(cfg: Config, account: str, key: KeyConfig, client: httpx.AsyncClient,
                    *, monitor_key: bool = True
                    ) -> tuple[JsonObject | None, int | None, str]:
    """(apiRestrictions flags, clock offset ms, note) for a key whose secret we hold.

    `monitor_key`: False for another key read for the audit, so a refusal is reported as
    that key's, not as the monitor going blind."""
    from monitor.binance.rest import BinanceError, BinanceRest, KeyRejected
    from monitor.core.clock import SystemClock

    signer = key.signer()
    if key.api_key is None or signer is None:
        return None, None, ("not checked: Binance shows a key's permissions only to that key; "
                            "give Keywatch its secret (read-only use) or check API Management")
    rest = BinanceRest(client, cfg.binance.rest_url, key.api_key, signer, SystemClock(),
                       account=account, key_label=key.label,
                       recv_window=cfg.binance.recv_window_ms, monitor_key=monitor_key)
    try:
        offset = await rest.sync_time()
        from monitor.tools.keycheck import clock_verdict  # a server time that cannot be Binance's

        clock = clock_verdict(account, SystemClock().now_ms() + offset, offset,
                              cfg.binance.recv_window_ms)
        if clock.problem is not None:
            return None, None, f"not checked: {clock.problem}"
        res = await rest.get("/sapi/v1/account/apiRestrictions", weight=1)
    except KeyRejected as exc:
        return None, None, (f"not checked: Binance refused key {key.label} ({exc}); check "
                            "that it still exists and that its IP whitelist has this host")
    except (BinanceError, httpx.HTTPError) as exc:
        return None, None, f"not checked: key {key.label}: {exc}"
    return (res.body if isinstance(res.body, dict) else None), offset, ""


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        config: Path = typer.Option(Path("keywatch.toml"), "--config", "-c",
                                    help="TOML config (secrets in the environment or .env)."),
        allow_privileged: bool = typer.Option(
            False, help="Run even if the monitor key can trade or withdraw (not advised)."),
        health_port: int | None = typer.Option(
            None, help="Serve /healthz and /metrics on 127.0.0.1:PORT (off by default)."),
        skip_checks: bool = typer.Option(False, help="Skip the start-up checks."),
    ) -> None:
        """Run the monitor as a service against Binance (or its testnet).

        Before starting it checks the monitor key (read-only expected), the clock offset and
        each alert channel. SIGTERM or Ctrl-C drains queues, flushes the store and the outbox
        and exits 0.

        Example: keywatch run -c /etc/keywatch/keywatch.toml --health-port 9464
        """
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("httpx", "httpcore", "websockets", "uvicorn"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        cfg = _load(config)
        _refuse_unusable_store(config, cfg)
        if not skip_checks:
            problems = asyncio.run(_preflight(cfg, allow_privileged))
            if problems:
                for p in problems:
                    typer.echo(f"refusing to start: {p}", err=True)
                raise typer.Exit(code=3)
        raise typer.Exit(code=asyncio.run(_serve(cfg, health_port)))


async def _preflight(cfg: Config, allow_privileged: bool) -> list[str]:
    """The checks `keywatch run` makes before it watches anything."""
    from monitor.alert.channels import load_channels

    problems: list[str] = []
    async with httpx.AsyncClient(timeout=15.0) as client:
        for acct in cfg.accounts:
            key = acct.key(acct.monitor_key)
            flags, offset, note = await key_flags(cfg, acct.name, key, client)
            if flags is None:
                problems.append(f"account {acct.name}: monitor key {key.label} {note}")
                continue
            privileged = [f for f in PRIVILEGED if flags.get(f) is True]
            if privileged:
                msg = (f"account {acct.name}: the MONITOR KEY {key.label} can do more than read "
                       f"({', '.join(privileged)}). Keywatch needs a read-only key; a leaked "
                       "monitor key with these rights could drain the account.")
                if allow_privileged:
                    log.warning("%s (continuing: --allow-privileged)", msg)
                else:
                    problems.append(msg + " Create a read-only key, or pass --allow-privileged.")
            log.info("account %s: monitor key %s is read-only; clock offset %s ms", acct.name,
                     key.label, offset)
    try:
        channels = load_channels(cfg.alerts)
    except Exception as exc:  # an unparsable Apprise URL or config file
        problems.append(f"alert channels: {exc}")
    else:
        import apprise

        for ch in channels:
            if ch.url is not None and not apprise.Apprise().add(ch.url.get_secret_value()):
                problems.append(f"alert channel {ch.name}: Apprise cannot parse its URL")
        if not channels:
            log.warning("no alert channels configured: findings will be stored but not sent")
    return problems


async def _serve(cfg: Config, health_port: int | None) -> int:
    from monitor.collect.collector import Collector
    from monitor.collect.ingest import OnEvents
    from monitor.core.clock import SystemClock
    from monitor.service.metrics import Metrics
    from monitor.service.pipeline import Service, build_engine
    from monitor.store import open_store

    clock = SystemClock()
    store = open_store(cfg.store_path)
    engine = build_engine(cfg)
    metrics = Metrics()  # one registry: the collector's hooks feed the service's /metrics

    def collector(on_events: OnEvents) -> Collector:
        return Collector(cfg, store, clock, on_events=on_events, metrics=metrics)

    service = Service(cfg, store, clock, source_factory=collector, engine=engine,
                      metrics=metrics, health_port=health_port)
    try:
        return await service.run(install_signals=True)
    finally:
        store.close()
