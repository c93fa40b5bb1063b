"""A grid bot on stock ccxt with its default options: only the URLs point elsewhere.

Each round: the ticker, its open orders (cancel any older than 30 minutes), then a buy 0.5 %
under and a sell 0.5 % over the last price when fewer than two are open; the balance every
tenth round. ccxt stamps its own client order ids (its broker prefix), as it does for
everyone who does not pass one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import ccxt

from monitor.world.sim.clients.common import bind, run_rounds, settings


def make_exchange(base_url: str, api_key: str, secret: str) -> ccxt.binance:
    ex = ccxt.binance({"apiKey": api_key, "secret": secret})
    api = ex.urls["api"]
    for name, url in list(api.items()):
        if not isinstance(url, str):
            continue
        # keep each entry's path (/api/v3, /sapi/v1, /fapi/v1 ...), replace scheme and host
        api[name] = base_url + urlsplit(url).path
    return ex


def main() -> int:
    s = settings()
    ex = make_exchange(s.base_url, s.api_key, s.api_secret)
    bind(ex.session, s.source_ip)
    market = s.symbol[:-4] + "/" + s.symbol[-4:]

    def step(n: int) -> None:
        if not ex.markets:
            ex.load_markets()
        last = float(ex.fetch_ticker(market)["last"])
        now = ex.milliseconds()
        open_orders = ex.fetch_open_orders(market)
        for order in open_orders:
            if now - int(order["timestamp"]) > 30 * 60_000:
                ex.cancel_order(order["id"], market)
        if len(open_orders) < 2:
            amount = float(ex.amount_to_precision(market, 20 / last * 1.05))
            ex.create_order(market, "limit", "buy", amount,
                            float(ex.price_to_precision(market, last * 0.995)))
            ex.create_order(market, "limit", "sell", amount,
                            float(ex.price_to_precision(market, last * 1.005)))
        if n % 10 == 1:
            ex.fetch_balance()

    return run_rounds(step, s, "ccxt_grid")


if __name__ == "__main__":
    raise SystemExit(main())
