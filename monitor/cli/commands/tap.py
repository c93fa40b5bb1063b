"""`keywatch tap`: the tap on its own, so nothing the service checks can cut a bot off.

It reads only `[sources.tap]` and the keys' `api_key_env` / `api_key_sha256` (for labels),
forwards every call it can to Binance, and spools what it records to `[sources.tap] spool`
(`monitor/collect/spool.py`); `keywatch run` ingests the spool (`mode = "process"`).
Channels, the monitor key, the clock, the store, the rules and the detectors are none of its
business: it never looks at them, so a mistake there stops only the service.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import typer

from monitor.config import ConfigError, TapMode, TapSettings, load_tap_settings

log = logging.getLogger("keywatch.tap")
HEARTBEAT_S = 60.0


def register(app: typer.Typer) -> None:
    @app.command()
    def tap(
        config: Path = typer.Option(Path("keywatch.toml"), "--config", "-c",
                                    help="TOML config; only its sources.tap section and the "
                                    "keys' names are read."),
        metrics_port: int = typer.Option(0, "--metrics-port", min=0, max=65535,
                                         help="Serve Prometheus /metrics on 127.0.0.1:PORT "
                                         "(0: off)."),
    ) -> None:
        """Run the tap as its own process: forward the bots' calls, spool the records.

        Needs `enabled = true`, `mode = "process"` and `spool = "PATH"` in the sources.tap
        section; the service (`keywatch run`, same config) then reads the spool. An unset key
        variable is a warning (that key's calls are recorded as an unknown key), never a
        refusal. SIGTERM or Ctrl-C stops accepting calls, finishes those in flight and fsyncs
        the spool.

        Example: keywatch tap -c /etc/keywatch/keywatch.toml --metrics-port 9465
        """
        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("httpx", "httpcore", "uvicorn"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        try:
            settings = load_tap_settings(config)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=2) from None
        tc = settings.tap
        if not tc.enabled or tc.mode is not TapMode.PROCESS:
            typer.echo(f"{config}: sources.tap: the standalone tap needs `enabled = true` and "
                       '`mode = "process"` (with `spool = "PATH"`); in the default mode '
                       '"inprocess" `keywatch run` serves the tap itself', err=True)
            raise typer.Exit(code=2)
        for w in settings.warnings:
            log.warning("%s: %s", config, w)
        asyncio.run(serve(settings, metrics_port=metrics_port or None))


async def serve(settings: TapSettings, metrics_port: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT; then record what was answered and fsync the spool."""
    import uvicorn

    from monitor.collect.serverlimits import TAP_LIMITS, server_config
    from monitor.collect.spool import SpoolWriter
    from monitor.collect.tap import Tap
    from monitor.collect.tapmetrics import TapMetrics, metrics_server
    from monitor.core.clock import SystemClock

    tc = settings.tap
    assert tc.spool is not None  # TapConfig requires it in process mode
    spool = SpoolWriter(tc.spool, fsync_interval_s=tc.fsync_interval_s)
    spool.start()
    app = Tap(tc.upstream, SystemClock(), spool.offer, keys=settings.keys,
              local_address=tc.source_address, default_account=settings.default_account)
    metrics = TapMetrics(app.counters, spool.counters, settings.keys.values(),
                         settings.default_account)
    # commit: each call's record is written and fdatasync'd before its answer's last byte
    app.commit = metrics.wrap(spool.commit)
    host, _, port = tc.listen.rpartition(":")
    # fd limit raised, connections capped, keep-alive and request arrival timed (serverlimits)
    server = uvicorn.Server(server_config(
        app, host or "127.0.0.1", int(port), TAP_LIMITS, log_level="warning",
        server_header=False, date_header=False, lifespan="off", access_log=False))
    # uvicorn re-raises the SIGTERM/SIGINT it caught once it has shut down; with the default
    # handlers that would kill the process before the spool is synced and closed below
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_shutdown)
    beat = asyncio.create_task(_heartbeat(app, spool))
    scrape: asyncio.Task[None] | None = None
    if metrics_port is not None:
        exporter = metrics_server(metrics.registry, metrics_port)
        scrape = asyncio.create_task(exporter.serve(), name="tap-metrics")
    log.info("tap listening on %s, forwarding to %s, spooling to %s (%d key(s) known)%s",
             tc.listen, tc.upstream, tc.spool, len(settings.keys),
             f"; metrics on 127.0.0.1:{metrics_port}/metrics" if metrics_port else "")
    try:
        await server.serve()
    finally:
        beat.cancel()
        if scrape is not None:
            exporter.should_exit = True
            await scrape
        await app.aclose()  # records anything answered but not yet spooled
        spool.close()
        log.info("tap stopped: %s; spool %s", app.counters, spool.counters)


def _after_shutdown(sig: int, _frame: object) -> None:
    log.info("tap: %s received, shutting down", signal.Signals(sig).name)


async def _heartbeat(app: object, spool: object) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        log.info("heartbeat tap=%s spool=%s", getattr(app, "counters", {}),
                 getattr(spool, "counters", {}))
