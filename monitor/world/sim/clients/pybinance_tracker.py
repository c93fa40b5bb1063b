"""A portfolio tracker on stock python-binance: balances each round, prices every few rounds,
the trade history of its pairs hourly. Read-only: its key needs no trading permission."""

from __future__ import annotations

from binance.client import Client

from monitor.world.sim.clients.common import bind, run_rounds, settings


def make_client(base_url: str, api_key: str, secret: str) -> Client:
    Client.API_URL = f"{base_url}/api"  # python-binance's documented class attributes
    Client.MARGIN_API_URL = f"{base_url}/sapi"
    return Client(api_key, secret, ping=False)


def main() -> int:
    s = settings()
    client = make_client(s.base_url, s.api_key, s.api_secret)
    bind(client.session, s.source_ip)
    pairs = [p.strip() for p in s.symbol.split(",") if p.strip()]
    rounds_per_hour = max(1, round(3600 / s.every_s))

    def step(n: int) -> None:
        client.get_account()
        if n % 5 == 1:
            client.get_all_tickers()
        if n % rounds_per_hour == 1:
            for pair in pairs:
                client.get_my_trades(symbol=pair, limit=50)

    return run_rounds(step, s, "pybinance_tracker")


if __name__ == "__main__":
    raise SystemExit(main())
