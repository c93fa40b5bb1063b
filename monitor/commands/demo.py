"""`keywatch demo`: until the service exists, say so plainly instead of faking a demo."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def demo() -> None:
        """Run the end-to-end demo: simulator + real service + alerts, all on loopback."""
        typer.echo(
            "keywatch demo will: start the Binance simulator on 127.0.0.1 with a scripted day "
            "(normal bots, then a leaked key used from a foreign address, a permission probe, "
            "oversized orders, the IP restriction switched off), run the real service against it, "
            "deliver alerts through Apprise and print which alert caught each attack.\n"
            "It is not built yet (issue 7), so it exits with an error rather than pretend.",
            err=True,
        )
        raise typer.Exit(code=2)
