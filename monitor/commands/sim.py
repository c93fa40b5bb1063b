"""`keywatch sim`: run the Binance simulator (and optionally a scenario) standalone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def sim(
        scenario: str = typer.Option(None, help="Scenario to play (see --list)."),
        speed: float = typer.Option(1.0, help="Clock speed: 60 = an hour a minute."),
        port: int = typer.Option(0, help="Binance REST + WebSocket API port (0 = any free)."),
        control_port: int = typer.Option(0, help="HTTP control-plane port (0 = any free)."),
        seed: int = typer.Option(0, help="Seed for prices and bot behaviour."),
        tap_url: str = typer.Option(None, help="Send the bots' calls through this tap."),
        out_dir: Path = typer.Option(Path("runs"), help="Where the ground truth JSON goes."),
        show_keys: bool = typer.Option(
            False, "--show-keys",
            help="Print the API key and secret of each SIMULATOR key (fake, local-only keys "
            "made at start-up) so you can point a client at the simulator."),
        list_: bool = typer.Option(False, "--list", help="List shipped scenarios and exit."),
    ) -> None:
        """Serve a Binance look-alike on 127.0.0.1 and print where to point a client."""
        from monitor.clock import AcceleratedClock
        from monitor.sim import Simulator, list_scenarios, load_scenario, prepare, run_scenario

        if list_:
            for name in list_scenarios():
                typer.echo(f"{name}: {load_scenario(name).description.strip()}")
            return
        if scenario is not None and scenario not in list_scenarios() and not scenario.endswith(
                (".yaml", ".yml")):
            raise typer.BadParameter(f"unknown scenario {scenario!r}; "
                                     f"shipped: {', '.join(list_scenarios())}")

        async def main() -> None:
            clock = AcceleratedClock(speed)
            async with Simulator(clock=clock, port=port, seed=seed,
                                 control_port=control_port) as s:
                if scenario is not None:
                    prepare(s, scenario)
                else:
                    s.control.create_account("demo", {"USDT": 10000, "BTC": 0.2, "ETH": 2})
                    s.control.create_key("demo", "trader", permissions={
                        "enableReading": True, "enableSpotAndMarginTrading": True})
                    s.control.create_key("demo", "reader")
                typer.echo(f"REST          {s.rest_url}")
                typer.echo(f"WebSocket API {s.ws_api_url}")
                typer.echo(f"control plane {s.control_url}  (POST /control/<method>)")
                for k in s.control.list_keys():
                    wl = ", ".join(k.ip_whitelist) if k.ip_whitelist is not None else "any IP"
                    typer.echo(f"key {k.account}/{k.label} (whitelist: {wl})")
                    if show_keys:
                        secret = s.control.key_for(k.account, k.label)[1]
                        typer.echo(f"    api key {k.api_key}\n    secret  {secret}")
                if scenario is None:
                    typer.echo("no scenario: serving until Ctrl-C")
                    await asyncio.Event().wait()
                truth = await run_scenario(s, scenario, seed=seed, tap_url=tap_url,
                                           out_dir=out_dir, on_progress=typer.echo)
                typer.echo(f"ground truth: {len(truth.episodes)} episodes in {out_dir}/")

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            typer.echo("stopped")
