"""A DCA bot on stock binance-connector: a small market buy each round, then the balance.

It names its orders itself ("dca-<n>"), as most hand-written bots do, so its owner can list
that prefix in Keywatch's config."""

from __future__ import annotations

import random

from binance.spot import Spot

from monitor.world.sim.clients.common import bind, run_rounds, settings


def main() -> int:
    s = settings()
    client = Spot(api_key=s.api_key, api_secret=s.api_secret, base_url=s.base_url)
    bind(client.session, s.source_ip)
    rng = random.Random(f"{s.seed}:dca")

    def step(n: int) -> None:
        client.new_order(symbol=s.symbol, side="BUY", type="MARKET",
                         quoteOrderQty=rng.choice([15, 20, 25]), newClientOrderId=f"dca-{n}")
        client.account(omitZeroBalances="true")

    return run_rounds(step, s, "connector_dca")


if __name__ == "__main__":
    raise SystemExit(main())
