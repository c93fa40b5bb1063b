"""`keywatch check-config`: validate a config file and its environment without starting."""

from __future__ import annotations

from pathlib import Path

import typer

from monitor.config import (
    Config,
    ConfigError,
    channel_tags,
    env_file_warnings,
    key_file_warnings,
    load_config,
    path_problems,
    routing_warnings,
    store_problems,
    unrouted,
)
from monitor.core import resources


def _routing(cfg: Config) -> tuple[list[str], list[str]]:
    """(problems, warnings) of alert routing, with an Apprise config file's entries too."""
    tags = channel_tags(cfg)
    if not cfg.alerts.apprise_config:
        return [], routing_warnings(tags, cfg)
    from monitor.alert.channels import load_channels

    try:
        tags = [c.tags for c in load_channels(cfg.alerts)]
    except ValueError as exc:
        return [str(exc)], []
    return unrouted(cfg.alerts.routing, tags) if tags else [], routing_warnings(tags, cfg)


def _model_problems(cfg: Config) -> list[str]:
    """A model whose card is missing, not JSON or for other code: `run` would fall back to
    rules only, so check-config says so now."""
    from monitor.detect.forest import ModelMismatch, check_card

    if not Path(cfg.model_path).is_file():
        return []  # path_problems reports it
    try:
        check_card(cfg.model_path)
    except ModelMismatch as exc:
        return [f"model_path: {exc}"]
    return []


def register(app: typer.Typer) -> None:
    @app.command("check-config")
    def check_config(
        config: Path = typer.Option(Path("keywatch.toml"), "--config", "-c", help="TOML config"),
        online: bool = typer.Option(
            False, "--online", help="Also ask Binance: one signed read-only call per key whose "
            "secret is given (ok / refused with Binance's code), and the clock skew."),
    ) -> None:
        """Validate a config, the environment variables it names, the rules folder, model and
        store it uses; warn about a .env that others can read. --online: verify each key
        against Binance. Exits 1 on any problem (--online: or any key refused)."""
        for warning in env_file_warnings(config):
            typer.echo(f"warning: {warning}", err=True)
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
        routing, warnings = _routing(cfg)
        for warning in key_file_warnings(cfg) + warnings:
            typer.echo(f"warning: {warning}", err=True)
        problems = path_problems(cfg) + store_problems(cfg) + routing + _model_problems(cfg)
        if problems:
            typer.echo(str(ConfigError(config, problems)), err=True)
            raise typer.Exit(code=1)
        keys = sum(len(a.keys) for a in cfg.accounts)
        typer.echo(f"{config}: OK ({len(cfg.accounts)} account(s), {keys} key(s))")
        for what, value in (("rules", cfg.rules_dir), ("model", cfg.model_path)):
            shipped = " (shipped with Keywatch)" if resources.is_packaged(value) else ""
            typer.echo(f"  {what}: {Path(value).resolve()}{shipped}")
        if online and not _report_online(cfg):
            raise typer.Exit(code=1)


def _report_online(cfg: Config) -> bool:
    """Print each account's clock and each key's answer; False if anything was refused."""
    import asyncio

    import httpx

    from monitor.tools.keycheck import ClockCheck, KeyCheck, check_online

    async def run() -> tuple[list[ClockCheck], list[KeyCheck]]:
        async with httpx.AsyncClient(timeout=15.0) as client:
            return await check_online(cfg, client)

    clocks, keys = asyncio.run(run())
    good = True
    for c in clocks:
        if c.problem is not None:
            typer.echo(f"  clock: {c.problem}", err=True)
            good = False
        elif c.warning is not None:
            typer.echo(f"  warning: clock: {c.warning}", err=True)
        elif c.offset_ms is not None:
            typer.echo(f"  clock: account {c.account}: {c.offset_ms:+d} ms from Binance's "
                       "(within recvWindow)")
    for k in keys:
        typer.echo(f"  key {k.account}/{k.label}: {k.status} ({k.detail})",
                   err=k.status in ("refused", "error"))
        good = good and k.status not in ("refused", "error")
    return good
