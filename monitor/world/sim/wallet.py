"""Wallet and margin /sapi calls stock clients make at start-up (coin config, margin pairs,
trade fees).

ccxt's `load_markets` with a key set calls `capital/config/getall`, `margin/allPairs` and
`margin/isolated/allPairs` (binance-wire-2.md 2.3, 2.6); freqtrade's start-up fails if any of
them errs. Coins are the assets of the simulated symbols and margin pairs are the symbols whose
`SymbolSpec.margin` is set, so these answers cannot disagree with exchangeInfo. Every endpoint
is IP-limited: its weight shows in `X-SAPI-USED-IP-WEIGHT-1M`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from monitor.world.sim import errors
from monitor.world.sim.endpoint import KEY, READ, Ctx, Endpoint, fixed
from monitor.world.sim.market import SYMBOLS, fmt
from monitor.world.sim.views import account_view


@dataclass(frozen=True)
class Network:
    """One `networkList[]` entry's variable part; the rest is the same for every network."""

    network: str
    name: str
    fee: str
    minimum: str
    confirmations: int
    address_regex: str
    default: bool = False
    contract: str = ""  # token contract address; native coins have none ("")
    explorer: str = ""


EVM = "^(0x)[0-9A-Fa-f]{40}$"
COINS: dict[str, tuple[str, list[Network]]] = {
    "BTC": ("Bitcoin", [Network("BTC", "Bitcoin", "0.000012", "0.0001", 1,
                                "^[13][a-km-zA-HJ-NP-Z1-9]{25,34}$|^(bc1)[0-9A-Za-z]{39,59}$",
                                default=True)]),
    "ETH": ("Ethereum", [Network("ETH", "Ethereum (ERC20)", "0.0008", "0.0016", 6, EVM,
                                 default=True)]),
    "USDT": ("TetherUS", [
        Network("ETH", "Ethereum (ERC20)", "4", "8", 6, EVM, default=True,
                contract="0xdac17f958d2ee523a2206206994597c13d831ec7",
                explorer="https://etherscan.io/token/"),
        Network("BSC", "BNB Smart Chain (BEP20)", "0.01", "0.02", 15, EVM,
                contract="0x55d398326f99059ff775485246999027b3197955",
                explorer="https://bscscan.com/token/"),
    ]),
    "DOGE": ("Dogecoin", [Network("DOGE", "DogeCoin", "4", "20", 50,
                                  "^(D|A|9)[a-km-zA-HJ-NP-Z1-9]{33,34}$", default=True)]),
}


def _network(coin: str, net: Network) -> dict[str, object]:
    """Every documented field (wallet docs, All Coins' Information); amounts STRING.

    `depositDesc`/`withdrawDesc` are documented as shown only when that side is closed;
    both are open here, so they are the empty strings real answers carry. SIMULATOR CHOICE:
    the docs' example shows `contractAddressUrl`, `contractAddress` and `denomination` on a
    token network only; native coins get "" and 1 (one coin is one unit) so every entry has
    every documented key.
    """
    out: dict[str, object] = {
        "network": net.network, "coin": coin, "withdrawIntegerMultiple": "0.00000001",
        "isDefault": net.default, "depositEnable": True, "withdrawEnable": True,
        "depositDesc": "", "withdrawDesc": "", "specialTips": "", "specialWithdrawTips": "",
        "name": net.name, "resetAddressStatus": False, "addressRegex": net.address_regex,
        "memoRegex": "", "withdrawFee": net.fee, "withdrawMin": net.minimum,
        "withdrawMax": "9999999999.99999999", "withdrawInternalMin": "0.00000001",
        "depositDust": "0.00000001", "minConfirm": net.confirmations, "unLockConfirm": 0,
        "sameAddress": False, "withdrawTag": False, "estimatedArrivalTime": 5, "busy": False,
        "contractAddressUrl": net.explorer, "contractAddress": net.contract, "denomination": 1,
    }
    return out


def coin_assets() -> list[str]:
    """Every asset a simulated symbol trades, in first-seen order."""
    return list(dict.fromkeys(a for s in SYMBOLS.values() for a in (s.base, s.quote)))


def h_config_getall(ctx: Ctx) -> object:
    acct = ctx.account
    rows = []
    for coin in coin_assets():
        name, networks = COINS[coin]
        free, locked = acct.balance(coin)
        rows.append({
            "coin": coin, "depositAllEnable": True, "withdrawAllEnable": True, "name": name,
            "free": fmt(free), "locked": fmt(locked), "freeze": "0", "withdrawing": "0",
            "ipoing": "0", "ipoable": "0", "storage": "0", "isLegalMoney": False,
            "trading": True, "networkList": [_network(coin, n) for n in networks],
        })
    return rows


def _pairs(ctx: Ctx) -> list[str]:
    """Margin symbols, or the one `symbol` asked for (-1121 when it is not a margin pair).

    SIMULATOR CHOICE: the docs do not say how an unknown `symbol` is refused; -1121 is what
    the spot endpoints answer.
    """
    symbols = [s.symbol for s in SYMBOLS.values() if s.margin]
    wanted = ctx.params.get("symbol")
    if wanted:
        if wanted not in symbols:
            raise errors.invalid_symbol()
        return [wanted]
    return symbols


def h_margin_pairs(ctx: Ctx) -> object:
    """Cross margin pairs. `id` is a LONG the docs give no meaning to: SIMULATOR CHOICE, the
    symbol's position in the simulator's list. `delistTime` is optional and omitted."""
    order = list(SYMBOLS)
    return [{"id": order.index(sym) + 1, "symbol": sym, "base": SYMBOLS[sym].base,
             "quote": SYMBOLS[sym].quote, "isMarginTrade": True, "isBuyAllowed": True,
             "isSellAllowed": True} for sym in _pairs(ctx)]


def h_isolated_pairs(ctx: Ctx) -> object:
    return [{"symbol": sym, "base": SYMBOLS[sym].base, "quote": SYMBOLS[sym].quote,
             "isMarginTrade": True, "isBuyAllowed": True, "isSellAllowed": True}
            for sym in _pairs(ctx)]


def h_trade_fee(ctx: Ctx) -> object:
    """Maker/taker rates as GET /api/v3/account reports them (one definition: `account_view`)."""
    rates = account_view(ctx.account, True, True)["commissionRates"]
    assert isinstance(rates, dict)
    wanted = ctx.params.get("symbol")
    if wanted and wanted not in SYMBOLS:
        raise errors.invalid_symbol()
    return [{"symbol": sym, "makerCommission": str(Decimal(rates["maker"]).normalize()),
             "takerCommission": str(Decimal(rates["taker"]).normalize())}
            for sym in SYMBOLS if not wanted or sym == wanted]


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/sapi/v1/capital/config/getall", fixed(10), READ, h_config_getall, "ip"),
    Endpoint("GET", "/sapi/v1/margin/allPairs", fixed(1), KEY, h_margin_pairs, "ip"),
    # Documented as MARKET_DATA although its parameter table lists `timestamp`: the key
    # header is what is checked; a signature, when sent (ccxt signs every /sapi call), is read
    # as an ordinary parameter.
    Endpoint("GET", "/sapi/v1/margin/isolated/allPairs", fixed(10), KEY, h_isolated_pairs,
             "ip"),
    Endpoint("GET", "/sapi/v1/asset/tradeFee", fixed(1), READ, h_trade_fee, "ip"),
]
