"""`keywatch scan`: find Binance keys and secrets in files and git history before a crawler does.

Exit codes are the contract a hook or CI job relies on: 0 clean, 1 findings, 2 usage error.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from monitor.tools.scan import ScanError, ScanReport, run, summary

EXAMPLES = (
    "Examples:\n\n"
    "  keywatch scan .                    (working tree; files git ignores are skipped)\n\n"
    "  keywatch scan . --git-history      (plus every commit on every branch)\n\n"
    "  keywatch scan --staged             (what `git commit` would record)\n\n"
    "  keywatch scan config.json bot.py   (just these files, as pre-commit calls it)\n\n"
    "  keywatch scan . --json | jq .findings\n\n"
    "Exit status: 0 nothing found, 1 findings, 2 usage error. "
    "A line with the comment `keywatch: allow` is never reported. "
    'Values made of one repeated unit ("test" * 16) are treated as placeholders. '
    "A key found here must be revoked on Binance: deleting the commit does not remove it "
    "from clones and forks."
)


def register(app: typer.Typer) -> None:
    @app.command("scan", epilog=EXAMPLES)
    def scan(
        paths: list[Path] = typer.Argument(  # noqa: B008
            None, help="Files or directories to scan (default: the current directory)."
        ),
        git_history: bool = typer.Option(
            False, "--git-history", help="Also scan every commit of the repository."
        ),
        staged: bool = typer.Option(
            False, "--staged", help="Also scan the staged changes (git diff --cached)."
        ),
        include_ignored: bool = typer.Option(
            False, "--include-ignored", help="Also scan files git ignores (e.g. your local .env)."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Find Binance API keys and secrets in files and git history (values are masked)."""
        out = Console(highlight=False, soft_wrap=True)
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        try:
            # --staged alone means "what is about to be committed", not the whole tree
            report = run(list(paths or []), git_history=git_history, staged=staged,
                         include_ignored=include_ignored)
        except ScanError as exc:
            err.print(f"[red]keywatch scan:[/] {escape(str(exc))}")
            raise typer.Exit(code=2) from None
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            _print(report, out)
        raise typer.Exit(code=1 if report.leaks else 0)


def _print(report: ScanReport, out: Console) -> None:
    for leak in report.leaks:
        out.print(f"[bold]{escape(leak.location())}[/]: [red]{leak.rule}[/]: "
                  f"{escape(leak.message())}")
    line = escape(summary(report))
    out.print(f"[red]{line}[/]" if report.leaks else f"[green]{line}[/]")
