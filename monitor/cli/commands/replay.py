"""`keywatch replay`: past traffic through the live service's detectors, after the fact.

Why: an incident is often found days later (a drained account, a leaked key seen in a repo).
The access logs a user's bots kept, or a store another Keywatch wrote, hold what happened; this
command runs them through the same rules, posture checks and forest the service runs (the
engine's vectorised replay path, which the live path is proven equal to), prints what would have
been found, and with `--alerts` sends those findings through the same alert stages and channels.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import typer

from monitor.config import Config, load_config
from monitor.core.events import Event
from monitor.core.findings import Finding

MAX_SHOWN_BAD = 5  # bad lines named one by one; the rest are counted
MAX_LINE = 1 << 20
YEAR_MS = 366 * 86_400_000  # the live tailer's limit: a longer line is one bad line


@dataclass
class LogRead:
    """Events read from access logs, and the lines that were not events (path:line, why)."""

    events: list[Event] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    lines: int = 0


def read_logs(paths: Iterable[Path], account: str, keys: dict[str, tuple[str, str]],
              received_ts: int) -> LogRead:
    """Parse JSON-lines access logs with the live tailer's parser (one definition of a line)."""
    from pydantic import ValidationError

    from monitor.collect.logfile import BadLine, parse_line

    out = LogRead()
    for path in paths:
        with path.open("rb") as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                out.lines += 1
                if len(raw) > MAX_LINE:
                    out.bad.append(f"{path}:{n}: line longer than {MAX_LINE} bytes")
                    continue
                try:
                    out.events.append(parse_line(raw.decode("utf-8"), account, received_ts,
                                                 keys))
                except UnicodeDecodeError:
                    out.bad.append(f"{path}:{n}: not UTF-8")
                except (BadLine, ValidationError) as exc:
                    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    out.bad.append(f"{path}:{n}: {why}")
    return out


def find(cfg: Config, events: list[Event], rules_dir: Path | None,
         model: Path | None) -> list[Finding]:
    """The service's engine (same rules, posture, forest) over the events, in time order."""
    from monitor.detect.engine import DetectionEngine
    from monitor.features import events_to_frame

    engine = DetectionEngine.from_config(cfg, rules_dir, model)
    events = sorted(events, key=lambda e: (e.ts, e.event_id))
    return sorted(engine.replay(events_to_frame(events)), key=lambda f: (f.ts, f.finding_id))


def send(cfg: Config, findings: list[Finding], outbox: Path) -> tuple[int, int]:
    """Findings through the alert stages into a persistent outbox, then out through Apprise.

    Returns (delivered, left in the outbox). The outbox is a store of its own, never the live
    service's: a replay must not fold past findings into the live incidents."""
    from monitor.alert.manager import AlertManager
    from monitor.alert.notify import Notifier
    from monitor.alert.redact import config_secrets
    from monitor.core.clock import SystemClock
    from monitor.store import open_store

    store = open_store(outbox)
    clock = SystemClock()
    secrets = config_secrets(cfg)
    manager = AlertManager(store, clock, cfg.alerts, secrets=secrets)
    notifier = Notifier(store, clock, cfg.alerts, secrets=secrets)
    manager.submit(findings)
    manager.flush(clock.now_ms(), final=True)
    delivered = asyncio.run(notifier.send_due())
    # whatever is still queued, however far its retry lies ahead
    left = len(store.due_deliveries(clock.now_ms() + YEAR_MS, limit=100_000))
    store.close()
    return delivered, left


def _line(f: Finding) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(f.ts / 1000))
    who = f"{f.account}/{f.key}" if f.key else f.account
    return f"{when} UTC  {f.severity.value:<8} {f.rule_id:<32} {who}  {f.title}"


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        logs: list[Path] = typer.Argument(None, help="JSON-lines access logs (the tailer's "
                                                     "format); none with --store"),
        config: Path = typer.Option(Path("keywatch.toml"), "-c", "--config",
                                    help="config TOML (accounts, keys, whitelists, channels)"),
        store: Path | None = typer.Option(None, "--store", help="a Keywatch SQLite store to "
                                          "replay instead of (or beside) logs"),
        account: str | None = typer.Option(None, help="account the log lines belong to "
                                           "(default: the config's first); with --store, "
                                           "replay only this account"),
        since: int | None = typer.Option(None, help="--store: from this time (ms)"),
        until: int | None = typer.Option(None, help="--store: until this time (ms)"),
        rules_dir: Path | None = typer.Option(None, "--rules", help="rules folder (default: "
                                              "the config's)"),
        model: Path | None = typer.Option(None, help="forest model (default: the config's)"),
        alerts: bool = typer.Option(False, "--alerts", help="also send the findings through "
                                    "the config's alert channels"),
        outbox: Path | None = typer.Option(None, help="--alerts: the outbox store to use "
                                           "(default: a temporary one, kept if anything is "
                                           "left undelivered)"),
        json_out: bool = typer.Option(False, "--json", help="one JSON finding per line"),
    ) -> None:
        """Run past traffic (access logs or a store) through the service's detectors.

        Example: keywatch replay -c keywatch.toml bots/grid-access.log --alerts"""
        cfg = load_config(config)
        if not logs and store is None:
            typer.echo("name one or more access logs, or --store DB", err=True)
            raise typer.Exit(code=2)
        events: list[Event] = []
        if logs:
            for p in logs:
                if not p.is_file():
                    typer.echo(f"{p}: not a readable file", err=True)
                    raise typer.Exit(code=2)
            acct = account or cfg.accounts[0].name
            read = read_logs(logs, acct, cfg.key_map(), int(time.time() * 1000))
            events += read.events
            for b in read.bad[:MAX_SHOWN_BAD]:
                typer.echo(f"skipped {b}", err=True)
            if len(read.bad) > MAX_SHOWN_BAD:
                typer.echo(f"skipped {len(read.bad) - MAX_SHOWN_BAD} more bad lines", err=True)
            typer.echo(f"read {len(read.events)} events from {read.lines} lines "
                       f"({len(read.bad)} bad)", err=True)
        if store is not None:
            from monitor.store import open_store
            from monitor.store.frames import events_from_frame

            if not store.is_file():
                typer.echo(f"{store}: no such store", err=True)
                raise typer.Exit(code=2)
            st = open_store(store)
            stored = events_from_frame(st.load_events(since=since, until=until,
                                                      account=account))
            st.close()
            typer.echo(f"read {len(stored)} events from {store}", err=True)
            events += stored
        findings = find(cfg, events, rules_dir, model)
        for f in findings:
            typer.echo(f.model_dump_json() if json_out else _line(f))
        typer.echo(f"{len(findings)} finding(s)", err=True)
        if alerts and findings:
            keep = outbox is not None
            box = outbox or Path(tempfile.mkdtemp(prefix="keywatch-replay-")) / "outbox.db"
            delivered, left = send(cfg, findings, box)
            typer.echo(f"alerts: {delivered} delivered, {left} left", err=True)
            if left:
                typer.echo(f"undelivered alerts are kept in {box}; run again with "
                           f"--outbox {box} to retry", err=True)
                raise typer.Exit(code=1)
            if not keep:
                box.unlink(missing_ok=True)
