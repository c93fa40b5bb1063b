"""`keywatch`: the command line. Each area registers its own commands from its own module.

Areas live in `monitor/cli/commands/<area>.py`, each exposing `register(app)`, so the simulator,
detection, alerting and service commands grow without touching one shared file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import monitor.cli.commands as _commands

app = typer.Typer(
    name="keywatch",
    help="Watch how Binance API keys are used and raise the alarm before a leaked key drains "
    "an account.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold secrets
    add_completion=False,
)


def version() -> str:
    """The installed distribution's version (pyproject.toml's, for an editable install too)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("keywatch")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"keywatch {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    _version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                  help="Print the version and exit."),
) -> None:
    """Watch how Binance API keys are used and raise the alarm before a leaked key drains an
    account."""


def _register_areas() -> None:
    for mod in sorted(pkgutil.iter_modules(_commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"monitor.cli.commands.{mod.name}")
        module.register(app)


_register_areas()


def main() -> None:
    """Run the CLI; a `KeywatchError` a command does not catch itself (a rules file, a model
    card, a config) is printed as its lines and exits non-zero, never as a traceback."""
    from monitor.core.errors import KeywatchError

    try:
        app()
    except KeywatchError as exc:
        typer.echo(str(exc), err=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
