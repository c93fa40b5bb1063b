"""`keywatch init`: start a deployment with a commented config and a `.env` for its secrets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from monitor.tools.initcmd import InitError, init_project

EXAMPLES = (
    "Examples:\n\n"
    "  keywatch init                      (keywatch.toml and .env in the current directory)\n\n"
    "  keywatch init /etc/keywatch        (a server layout, see deploy/README.md)\n\n"
    "  keywatch init --force              (overwrite both files)\n\n"
    "Existing files are never overwritten without --force. The .env is created with mode 0600 "
    "and `.env` is added to DIR/.gitignore (once)."
)


def register(app: typer.Typer) -> None:
    @app.command("init", epilog=EXAMPLES)
    def init(
        directory: Path = typer.Argument(Path("."), help="Where to write the files."),  # noqa: B008
        force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
        template: Path | None = typer.Option(  # noqa: B008
            None, "--template", help="Config template (default: keywatch.example.toml)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        key_type: str | None = typer.Option(
            None, "--key-type", help="The monitor key's type: hmac, ed25519 (Binance's "
            "recommendation) or rsa; asked when omitted on a terminal, else hmac."),
    ) -> None:
        """Write a commented keywatch.toml and a .env template, and git-ignore the .env."""
        out = Console(highlight=False, soft_wrap=True)
        if key_type is None:
            key_type = (typer.prompt("Monitor key type (hmac, ed25519, rsa)", default="ed25519")
                        if sys.stdin.isatty() else "hmac")
        try:
            result = init_project(directory, force=force, template=template,
                                  key_type=key_type.strip().lower())
        except (InitError, OSError) as exc:
            err = Console(stderr=True, highlight=False)
            err.print(f"[red]keywatch init:[/] {escape(str(exc))}")
            raise typer.Exit(code=1) from None
        if as_json:
            typer.echo(json.dumps({
                "written": [str(p) for p in result.written],
                "gitignore_updated": result.gitignore_updated,
                "env_vars": result.env_vars,
            }, indent=2))
            return
        for p in result.written:
            out.print(f"[green]wrote[/] {escape(str(p))}")
        if result.gitignore_updated:
            out.print(f"[green]added[/] .env to {escape(str(directory / '.gitignore'))}")
        config = directory / "keywatch.toml"
        out.print(
            f"Next: edit {escape(str(config))} (accounts, keys, channels), fill in the "
            f"{len(result.env_vars)} variable(s) in {escape(str(directory / '.env'))}, then run "
            f"`keywatch check-config --config {escape(str(config))}`."
        )
