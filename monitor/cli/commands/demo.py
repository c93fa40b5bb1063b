"""`keywatch demo` (what `make demo` runs): a compressed day, watched for real, then a verdict."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from monitor.world.demo.receiver import Received

ON_FREE = " on 127.0.0.1 (0, the default: a free port)."

SEED_SIGNALS = {
    "call_rate_spike": "call-rate spike",
    "unknown_ip": "unfamiliar IP",
    "failure_rate_jump": "failure-rate jump",
    "oversized_rejected_order": "large order rejected",
}


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        scenario: str = typer.Option("demo", help="Shipped scenario to run (see `keywatch sim`)."),
        speed: float = typer.Option(
            120.0, help="Clock speed: 120 runs the three-hour demo session in 90 s."),
        seed: int = typer.Option(7, help="Scenario seed (same seed, same day)."),
        out: Path = typer.Option(Path("runs"), help="Where the run directory goes."),
        log_level: str = typer.Option("ERROR", help="Log level of the service's own log lines."),
        sim_port: str = typer.Option(
            "0", metavar="PORT", help=f"Simulator REST and WebSocket API{ON_FREE}"),
        stream_port: str = typer.Option(
            "0", metavar="PORT", help=f"Simulator market-data streams{ON_FREE}"),
        tap_port: str = typer.Option(
            "0", metavar="PORT", help=f"The tap the bots call through{ON_FREE}"),
        health_port: str = typer.Option(
            "0", metavar="PORT", help=f"The service's /healthz and /metrics{ON_FREE}"),
        receiver_port: str = typer.Option(
            "0", metavar="PORT", help=f"The webhook the alerts are delivered to{ON_FREE}"),
    ) -> None:
        """Run the simulator with a scripted day, the real service against it, and real alerts.

        Exits 0 when every injected attack was caught by an alert that names it, 1 otherwise.

        Every server it starts listens on 127.0.0.1, each on a free port unless given one;
        the start-up lines print where.

        Example: keywatch demo --tap-port 8765 --health-port 9464
        """
        import sys

        from monitor.world.demo.ports import DemoPorts, PortError

        try:
            ports = DemoPorts.parse(sim=sim_port, stream=stream_port, tap=tap_port,
                                    health=health_port, receiver=receiver_port)
            ports.check_free()
        except PortError as exc:
            typer.echo(f"keywatch demo: {exc}", err=True)
            raise typer.Exit(code=2) from None

        from monitor.world.demo.run import run_demo

        console = Console(width=None if sys.stdout.isatty() else 140)
        logging.basicConfig(level=log_level.upper(),
                            format="%(levelname)s %(name)s: %(message)s")
        for noisy in ("httpx", "httpcore", "websockets", "uvicorn"):
            logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))

        def on_alert(rec: Received) -> None:
            ids = ", ".join(rec.alert_ids)
            console.print(f"[bold red]ALERT[/] {rec.title} [dim]({ids})[/]")

        progress = Progress(TextColumn("simulated day"), BarColumn(), TextColumn(
            "{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console, transient=True)
        task = progress.add_task("day", total=1.0)
        try:
            with progress:
                result = asyncio.run(run_demo(
                    scenario=scenario, speed=speed, seed=seed, out=out,
                    say=lambda m: console.print(f"[dim]{m}[/]"), on_alert=on_alert,
                    on_tick=lambda frac: progress.update(task, completed=frac), ports=ports,
                ))
        except KeyboardInterrupt:
            console.print("demo stopped (Ctrl-C): the simulator and the service are shut down")
            raise typer.Exit(code=130) from None

        table = Table(title="Injected attacks and the alerts that caught them")
        for col in ("attack", "key", "from", "alert", "rule", "signal", "delay (sim)",
                    "delay (wall)"):
            table.add_column(col)
        for c in result.catches:
            ep = c.episode
            delay = "-" if c.delay_ms is None else f"{c.delay_ms / 1000:.0f} s"
            wall = "-" if c.delay_ms is None else f"{c.delay_ms / 1000 / speed:.2f} s"
            table.add_row(
                ep.type.value, ep.key or "-", ep.actor_ip or "control plane",
                c.alert_id or "[red]MISSED[/]", c.rule_id or "-", c.signal or "-", delay, wall,
            )
        console.print(table)
        console.print(f"[dim]delays are from the attack's first action to the alert reaching the "
                      f"webhook; at {speed:g}x every wall millisecond of network and processing "
                      f"is {speed:g} simulated ms[/]")
        seen = [name for sig, name in SEED_SIGNALS.items() if sig in result.signals_alerted]
        console.print(f"signs of a leaked key alerted: {', '.join(seen) or 'none'} "
                      f"({len(seen)} of 4); alerts received: {len(result.received)}; "
                      f"events stored: {result.events:,}")
        console.print(f"event database: {result.db_path}")
        first = next((c.alert_id for c in result.catches if c.alert_id), None)
        if first:
            console.print(f"investigate: keywatch notebook {first} --db {result.db_path} "
                          f"--config {result.config_path} --html {result.run_dir}/incident.html")
        if not result.ok:
            console.print("[bold red]some attacks were not caught[/]")
            raise typer.Exit(code=1)
        console.print("[bold green]every injected attack was caught[/]")
