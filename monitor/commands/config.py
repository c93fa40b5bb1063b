"""`keywatch check-config`: validate a config file and its environment without starting."""

from __future__ import annotations

from pathlib import Path

import typer

from monitor.config import ConfigError, load_config


def register(app: typer.Typer) -> None:
    @app.command("check-config")
    def check_config(
        config: Path = typer.Option(Path("keywatch.toml"), "--config", "-c", help="TOML config"),
    ) -> None:
        """Validate a config and the environment variables it names; print every problem."""
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
        keys = sum(len(a.keys) for a in cfg.accounts)
        typer.echo(f"{config}: OK ({len(cfg.accounts)} account(s), {keys} key(s))")
