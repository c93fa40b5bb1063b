"""The control plane: what only the exchange's operator (tests, scenarios) may do.

It is an in-process object, and optionally a small HTTP app on its OWN port; no Binance route
reaches it, just as a key's whitelist is invisible to the Binance API on the real exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from monitor.world.sim.exchange import Exchange
from monitor.world.sim.market import SYMBOLS
from monitor.world.sim.state import PERMISSION_FLAGS


@dataclass(frozen=True)
class KeyInfo:
    """A key as the operator sees it. The secret is kept out of repr so logs never show it."""

    account: str
    label: str
    api_key: str
    ip_whitelist: tuple[str, ...] | None
    permissions: dict[str, bool] = field(default_factory=dict)


class Control:
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    # -- accounts and keys ----------------------------------------------------------------
    def create_account(self, name: str, balances: dict[str, float]) -> None:
        account = self._ex.books.add_account(name)
        for asset, amount in balances.items():
            account.free[asset] = Decimal(str(amount))
        account.update_ms = self._ex.now_ms()

    def create_key(self, account: str, label: str, *, permissions: dict[str, bool] | None = None,
                   ip_whitelist: list[str] | None = None,
                   create_time_ms: int | None = None,
                   public_key: str | None = None) -> tuple[str, str]:
        """Make a key; returns (api_key, secret), both random at run time. With the user's PEM
        `public_key` (Ed25519 or RSA) the key is registered as that type and the secret is
        empty: the user signs with the private half, which the simulator never sees."""
        _check_flags(permissions or {})
        key = self._ex.books.add_key(account, label, permissions, ip_whitelist,
                                     create_time_ms if create_time_ms is not None
                                     else self._ex.now_ms(), public_key)
        return key.api_key, key.secret

    def list_keys(self) -> list[KeyInfo]:
        return [KeyInfo(k.account, k.label, k.api_key,
                        tuple(k.ip_whitelist) if k.ip_whitelist is not None else None,
                        {f: bool(k.permissions.get(f, False)) for f in PERMISSION_FLAGS})
                for k in self._ex.books.keys.values()]

    def key_for(self, account: str, label: str) -> tuple[str, str]:
        for k in self._ex.books.keys.values():
            if k.account == account and k.label == label:
                return k.api_key, k.secret
        raise KeyError(f"no key labelled {label!r} on account {account!r}")

    def set_permissions(self, api_key: str, **flags: bool) -> None:
        _check_flags(flags)
        self._ex.books.key(api_key).permissions.update(flags)

    def set_whitelist(self, api_key: str, ips: list[str] | None) -> None:
        self._ex.books.key(api_key).ip_whitelist = list(ips) if ips is not None else None

    def whitelist(self, api_key: str) -> list[str] | None:
        wl = self._ex.books.key(api_key).ip_whitelist
        return list(wl) if wl is not None else None

    def set_balance(self, account: str, asset: str, free: float) -> None:
        acct = self._ex.books.accounts[account]
        acct.free[asset] = Decimal(str(free))
        acct.update_ms = self._ex.now_ms()

    def set_price(self, symbol: str, price: float) -> None:
        if symbol not in SYMBOLS:
            raise KeyError(f"unknown symbol {symbol!r}; known: {', '.join(SYMBOLS)}")
        self._ex.engine.paths[symbol].set(Decimal(str(price)))
        self._ex.engine.match()

    def price(self, symbol: str) -> float:
        return float(self._ex.engine.price(symbol))

    # -- faults ----------------------------------------------------------------------------
    def drop_streams(self) -> None:
        self._ex.hub.drop_all()

    def stall_streams(self, seconds: float | None = None) -> None:
        self._ex.hub.stall(seconds)

    def resume_streams(self) -> None:
        self._ex.hub.resume()

    def fail_rest(self, status: int = 503, count: int = 1) -> None:
        self._ex.faults.fail_status, self._ex.faults.fail_left = status, count

    def delay_rest(self, ms: int) -> None:
        self._ex.faults.delay_ms = ms

    def shift_clock(self, ms: int) -> None:
        self._ex.skew_ms += ms

    def expire_subscriptions(self) -> None:
        self._ex.hub.expire_all()

    def force_rollover(self) -> None:
        self._ex.hub.close_all("24h")

    # -- records ---------------------------------------------------------------------------
    def order_events(self, account: str) -> list[dict]:
        return list(self._ex.books.accounts[account].order_events)

    def weight_used(self, ip: str) -> int:
        return self._ex.limits.used(ip, self._ex.now_ms())

    def weight_log(self) -> list[tuple[int, str, str, int]]:
        return list(self._ex.limits.log)

    def stream_connections(self) -> int:
        return len(self._ex.hub.connections)

    def server_time_ms(self) -> int:
        return self._ex.now_ms()


def _check_flags(flags: dict[str, bool]) -> None:
    unknown = sorted(set(flags) - set(PERMISSION_FLAGS))
    if unknown:
        raise ValueError(f"unknown permission flags {unknown}; known: {list(PERMISSION_FLAGS)}")


HTTP_METHODS = {
    "create_account", "create_key", "list_keys", "set_permissions", "set_whitelist",
    "set_balance", "set_price", "drop_streams", "stall_streams", "resume_streams", "fail_rest",
    "delay_rest", "shift_clock", "expire_subscriptions", "force_rollover", "order_events",
    "weight_used", "weight_log", "whitelist", "price",
}


def control_app(control: Control) -> Starlette:
    """POST /control/<method> with a JSON object of keyword arguments; answers JSON."""

    async def call(request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if name not in HTTP_METHODS:
            return JSONResponse({"error": f"unknown control method {name!r}",
                                 "known": sorted(HTTP_METHODS)}, status_code=404)
        try:
            kwargs = await request.json() if await request.body() else {}
            result = getattr(control, name)(**kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if name == "list_keys":
            result = [k.__dict__ for k in result]
        return JSONResponse({"result": result})

    return Starlette(routes=[Route("/control/{name}", call, methods=["POST"])])
