"""`keywatch sim`: run the Binance simulator (and optionally a scenario) standalone.

The help text is the control plane's manual: a user who wants to try their own bot against the
simulator makes an account, a key and a whitelist through it, so it is documented here, where
`keywatch sim --help` shows it, and the README points here.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from monitor.world.sim.control import KeyInfo

CONTROL_HELP = """\
Serve a Binance look-alike on 127.0.0.1 and print where to point a client.

Without --scenario it makes an account "demo" (10,000 USDT, 0.2 BTC, 2 ETH) with two keys,
"trader" (read + spot trading) and "reader" (read only), both usable from any address, and
serves until Ctrl-C. --show-keys prints each key's API key and secret (random, made at
start-up, valid only on this simulator).

The control plane (the exchange operator's side, on its own port) takes
POST /control/<method> with a JSON object of keyword arguments and answers {"result": ...}:

  create_account  {"name": "me", "balances": {"USDT": 5000, "BTC": 0.1}}
  create_key      {"account": "me", "label": "bot", "permissions":
                   {"enableReading": true, "enableSpotAndMarginTrading": true},
                   "ip_whitelist": ["127.0.0.1"]}        -> [api_key, secret]
  list_keys       {}                   set_whitelist  {"api_key": "...", "ips": null}
  set_permissions {"api_key": "...", "enableWithdrawals": false}
  set_balance     {"account": "me", "asset": "USDT", "free": 100}
  set_price       {"symbol": "BTCUSDT", "price": 64000}

for example: curl -s -X POST http://127.0.0.1:PORT/control/create_account
  -d '{"name": "me", "balances": {"USDT": 5000}}'

Faults for testing a client: fail_rest, delay_rest, shift_clock, drop_streams, stall_streams,
resume_streams, expire_subscriptions, force_rollover. Records: order_events, weight_used,
weight_log, whitelist, price.
"""


def describe_key(k: KeyInfo) -> str:
    """One line saying what a key may do and from where (no secret in it)."""
    flags = [f for f, on in k.permissions.items() if on]
    wl = ", ".join(k.ip_whitelist) if k.ip_whitelist is not None else "any IP"
    return f"key {k.account}/{k.label}: {', '.join(flags) or 'no permission'}; from {wl}"


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, installed after the servers started.

    uvicorn's servers take both signals for themselves (and only stop themselves), and a shell
    starts a background job with SIGINT ignored, so `keywatch sim &` used to outlive both: the
    handlers set here replace those, whatever was there before.
    """
    loop, stop = asyncio.get_running_loop(), asyncio.Event()

    def handle(_sig: int, _frame: object) -> None:
        loop.call_soon_threadsafe(stop.set)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
    return stop


def register(app: typer.Typer) -> None:
    @app.command(help=CONTROL_HELP)
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
        from monitor.core.clock import AcceleratedClock
        from monitor.world.sim import (
            Simulator,
            list_scenarios,
            load_scenario,
            prepare,
            run_scenario,
        )

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
                stop = _stop_on_signals()
                if scenario is not None:
                    prepare(s, scenario)
                else:
                    s.control.create_account("demo", {"USDT": 10000, "BTC": 0.2, "ETH": 2})
                    s.control.create_key("demo", "trader", permissions={
                        "enableReading": True, "enableSpotAndMarginTrading": True})
                    s.control.create_key("demo", "reader")
                typer.echo(f"REST          {s.rest_url}")
                typer.echo(f"WebSocket API {s.ws_api_url}")
                stream_url = getattr(s, "stream_url", "")
                if stream_url:
                    typer.echo(f"streams       {stream_url}  (/ws/<stream>, /stream?streams=)")
                typer.echo(f"control plane {s.control_url}  (POST /control/<method>; "
                           "see keywatch sim --help)")
                for k in s.control.list_keys():
                    typer.echo(describe_key(k))
                    if show_keys:
                        secret = s.control.key_for(k.account, k.label)[1]
                        typer.echo(f"    api key {k.api_key}\n    secret  {secret}")
                if scenario is None:
                    typer.echo("no scenario: serving until Ctrl-C or SIGTERM")
                    await stop.wait()
                    typer.echo("stopped")
                    return
                play = asyncio.create_task(run_scenario(
                    s, scenario, seed=seed, tap_url=tap_url, out_dir=out_dir,
                    on_progress=typer.echo))
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({play, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                if not play.done():
                    play.cancel()
                    await asyncio.gather(play, return_exceptions=True)
                    typer.echo("stopped (scenario interrupted, no ground truth written)")
                    return
                truth = play.result()
                typer.echo(f"ground truth: {len(truth.episodes)} episodes in {out_dir}/")

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            typer.echo("stopped")
