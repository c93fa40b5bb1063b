"""`keywatch check-config`: validate a config file and its environment without starting."""

from __future__ import annotations

from pathlib import Path

import typer

from monitor import resources
from monitor.config import (
    Config,
    ConfigError,
    channel_tags,
    env_file_warnings,
    load_config,
    path_problems,
    routing_warnings,
    store_problems,
    unrouted,
)


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
    ) -> None:
        """Validate a config, the environment variables it names, and the rules folder and model
        it uses; warn about a .env that others can read. Exits 1 on any problem."""
        for warning in env_file_warnings(config):
            typer.echo(f"warning: {warning}", err=True)
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
        routing, warnings = _routing(cfg)
        for warning in warnings:
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
