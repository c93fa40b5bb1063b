"""`keywatch audit`: Binance's key-security checklist per key, for a person or for cron."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

COLUMNS = ("account", "key", "use case", "type", "created", "rotation due", "status",
           "problem", "what to do")


def table_rows(reports: list[Any]) -> list[tuple[str, ...]]:
    """One row per problem; a key with none is 'ok', or 'not checked' when Binance's answer
    for it could not be read (then the row says why and how to let Keywatch read it)."""
    rows: list[tuple[str, ...]] = []
    for r in reports:
        base = (r.account, r.key, r.use_case, r.key_type, r.created or "-", r.due or "-")
        for item in r.items:
            rows.append(base + (item.severity, item.message, item.action or "-"))
        if not r.verified:
            rows.append(base + ("not checked", r.note or "Binance's answer was not read",
                                r.fix or "-"))
        elif not r.items:
            rows.append(base + ("ok", "no problems found", "-"))
        if r.advice:  # a recommendation, not a problem: the key's status is unchanged
            rows.append(base + ("advice", r.advice, "-"))
    return rows


def register(app: typer.Typer) -> None:
    @app.command()
    def audit(
        config: Path = typer.Option(Path("keywatch.toml"), "--config", "-c", help="TOML config."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Binance's key-security checklist per key: permissions vs use case, IP restriction,
        rotation (from the key's creation date).

        A key whose permissions Binance would not show is reported as "not checked", never
        "ok". Exits 1 when any critical problem is found (so it can run from cron), 0
        otherwise.

        Example: keywatch audit -c keywatch.toml --json
        """
        from monitor.cli.commands.service import _load, key_flags
        from monitor.core.clock import SystemClock
        from monitor.core.findings import Severity
        from monitor.detect.anomaly import FOREST_PERSISTENT_RULE, FOREST_RULE
        from monitor.detect.rules import load_rules
        from monitor.detect.warmup import plan
        from monitor.tools.audit import audit_key, worst

        cfg = _load(config)
        rules = load_rules(cfg.rules_dir)

        async def gather() -> list[Any]:
            out = []
            async with httpx.AsyncClient(timeout=15.0) as client:
                for acct in cfg.accounts:
                    for key in acct.keys:
                        flags, _, note = await key_flags(
                            cfg, acct.name, key, client,
                            monitor_key=key.label == acct.monitor_key)
                        out.append(audit_key(cfg, acct.name, key, flags, rules,
                                             SystemClock().now_ms(), note))
            return out

        reports = asyncio.run(gather())
        top = worst(reports)
        warm = plan([*rules, FOREST_RULE, FOREST_PERSISTENT_RULE] if cfg.model_path else rules)
        if as_json:
            typer.echo(json.dumps({"worst": top.value if top else None,
                                   "not_checked": [f"{r.account}/{r.key}" for r in reports
                                                   if not r.verified],
                                   "keys": [r.to_dict() for r in reports],
                                   "warm_up": warm}, indent=2))
        else:
            console = Console(width=None if sys.stdout.isatty() else 160)
            table = Table(title="Keywatch key audit (Binance's key-security checklist)")
            for col in COLUMNS:
                table.add_column(col)
            for row in table_rows(reports):
                table.add_row(*row)
            console.print(table)
            steps = Table(title="Detection warm-up: what judges a key, and from when "
                                "(/healthz shows each key's progress)")
            steps.add_column("when")
            steps.add_column("rules")
            for step in warm:
                steps.add_row(step["when"], "\n".join(step["rules"]))
            console.print(steps)
        if top is Severity.CRITICAL:
            raise typer.Exit(code=1)
