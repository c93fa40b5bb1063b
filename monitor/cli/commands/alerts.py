"""`keywatch silence add|list|expire`, `keywatch alerts`, `keywatch test-alert`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import typer

from monitor.config import Config, ConfigError, load_config
from monitor.core.clock import SystemClock
from monitor.store import ACCOUNT_WIDE, Silence, open_store

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """'90s', '30m', '2h', '1d', '1h30m' -> seconds; a clear error otherwise."""
    parts = re.findall(r"(\d+)\s*([smhdw])", text.strip().lower())
    if not parts or re.sub(r"\s|\d+[smhdw]", "", text.lower()):
        raise typer.BadParameter(f"{text!r}: use a duration like 90s, 30m, 2h, 1d or 1h30m")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def _config(path: Path) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None


_CONFIG = typer.Option(Path("keywatch.toml"), "--config", "-c", help="TOML config")


def _key_shown(key: str | None) -> str:
    return "*" if key is None else "-(account-wide)" if key == ACCOUNT_WIDE else key


def describe(s: Silence) -> str:
    return (f"rule={s.rule_id or '*'} account={s.account or '*'} key={_key_shown(s.key)} "
            f"ip={s.ip or '*'}")


def register(app: typer.Typer) -> None:
    silence = typer.Typer(help="Silence matching alerts for a while (listed and expired here).",
                          no_args_is_help=True)
    app.add_typer(silence, name="silence")

    @silence.command("add")
    def silence_add(
        reason: str = typer.Option(..., "--reason", help="why, for the next person on call"),
        duration: str = typer.Option(..., "--for", help="how long: 30m, 2h, 1d ..."),
        rule: str | None = typer.Option(None, "--rule", help="rule id (default: any rule)"),
        key: str | None = typer.Option(
            None, "--key", help="key label; '-' for account-wide findings (no key); "
            "default: any key"),
        account: str | None = typer.Option(None, "--account", help="account (default: any)"),
        ip: str | None = typer.Option(
            None, "--ip", help="caller address (the finding's grouping IP, else the IP in its "
            "evidence); default: any"),
        config: Path = _CONFIG,
    ) -> None:
        """Suppress alerts matching every given field until the silence expires.

        Every alert prints the command that silences exactly its findings.
        """
        if rule is None and key is None and account is None and ip is None:
            typer.echo("refusing to silence everything: give at least one of --rule, --key, "
                       "--account, --ip", err=True)
            raise typer.Exit(code=2)
        if key == "-":
            key = ACCOUNT_WIDE
        cfg = _config(config)
        seconds = parse_duration(duration)
        now = SystemClock().now_ms()
        store = open_store(cfg.store_path)
        try:
            sid = store.add_silence(rule, account, key, now, now + seconds * 1000, reason,
                                    ip=ip)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from None
        finally:
            store.close()
        typer.echo(f"silence {sid} added for {duration}: "
                   + describe(Silence(sid, rule, account, key, now, now, reason, ip)))

    @silence.command("list")
    def silence_list(
        all_: bool = typer.Option(False, "--all", help="include expired silences"),
        config: Path = _CONFIG,
    ) -> None:
        """Active silences (or all with --all)."""
        from monitor.alert.render import iso

        cfg = _config(config)
        now = SystemClock().now_ms()
        store = open_store(cfg.store_path)
        try:
            rows = store.silences(None if all_ else now)
        finally:
            store.close()
        if not rows:
            typer.echo("no silences" if all_ else "no active silences")
        for s in rows:
            state = "active" if s.created_ts <= now < s.expires_ts else "expired"
            typer.echo(f"{s.silence_id}\t{state}\t{describe(s).replace(' ', chr(9))}\t"
                       f"until {iso(s.expires_ts)}\t{s.reason}")

    @silence.command("expire")
    def silence_expire(
        silence_id: int = typer.Argument(..., help="id from `keywatch silence list`"),
        config: Path = _CONFIG,
    ) -> None:
        """End a silence now."""
        cfg = _config(config)
        store = open_store(cfg.store_path)
        try:
            ok = store.expire_silence(silence_id, SystemClock().now_ms())
        finally:
            store.close()
        if not ok:
            typer.echo(f"silence {silence_id}: no such active silence", err=True)
            raise typer.Exit(code=1)
        typer.echo(f"silence {silence_id} expired")

    @app.command("alerts")
    def alerts(
        since: str = typer.Option("24h", "--since", help="how far back: 2h, 1d, 7d ..."),
        show: str | None = typer.Option(None, "--show", help="print one alert's full body"),
        config: Path = _CONFIG,
    ) -> None:
        """Recent alerts with their delivery state per channel."""
        from monitor.alert.render import iso

        cfg = _config(config)
        store = open_store(cfg.store_path)
        try:
            if show is not None:
                alert = store.load_alert(show)
                if alert is None:
                    typer.echo(f"no alert {show}", err=True)
                    raise typer.Exit(code=1)
                typer.echo(alert.title + "\n\n" + alert.body)
                return
            start = SystemClock().now_ms() - parse_duration(since) * 1000
            rows = store.load_alerts(since=start)
            for a in rows:
                ds = store.deliveries(a.alert_id)
                states = ", ".join(
                    f"{d.channel}={d.state}" + (f"({d.attempts} tries)" if d.attempts > 1 else "")
                    for d in ds
                ) or "no channel"
                typer.echo(f"{iso(a.created_ts)}  {a.alert_id}  {a.severity:<8}  "
                           f"{a.kind:<8}  {a.title}  [{states}]")
            if not rows:
                typer.echo(f"no alerts in the last {since}")
        finally:
            store.close()

    @app.command("test-alert")
    def test_alert(config: Path = _CONFIG) -> None:
        """Send a test message to each configured channel and report each one."""
        from monitor.alert.notify import Notifier
        from monitor.alert.redact import config_secrets

        cfg = _config(config)
        store = open_store(cfg.store_path)
        try:
            try:
                sender = Notifier(store, SystemClock(), cfg.alerts, secrets=config_secrets(cfg))
            except ValueError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(code=1) from None
            if not sender.channels:
                typer.echo("no channels configured (alerts.channels or alerts.apprise_config)",
                           err=True)
                raise typer.Exit(code=1)
            results = asyncio.run(sender.send_test())
        finally:
            store.close()
        for r in results:
            typer.echo(f"{r.channel}: " + ("OK" if r.ok else f"FAILED ({r.error})"))
        if not all(r.ok for r in results):
            raise typer.Exit(code=1)
