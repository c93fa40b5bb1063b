"""The Binance REST surface (/api/v3/*, /sapi/*, futures exchangeInfo) as Starlette routes.

Every request passes the same gate in the order the real exchange applies it: injected faults,
IP weight (429/418; /sapi has its own counters and never bans; /fapi and /dapi count in their
own pools), API key (-2014/-2015), the IP whitelist against the TCP peer (-2015), timestamp
window (-1021), HMAC over the exact query string + body (-1022), then the key's permission for
the endpoint (-2015). Security "KEY" (MARKET_DATA, USER_STREAM) stops after the whitelist: the
API key header is required, a signature is not.

A path the simulator does not serve, or a method a known path does not serve, answers 404 with
a JSON body (`errors.no_such_endpoint`: a SIMULATOR CHOICE, real Binance sends an HTML page).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.world.sim import auth, errors, futures_info, marketdata, trading, wallet
from monitor.world.sim.endpoint import KEY, READ, TRADE, WITHDRAW, Ctx, Endpoint, fixed
from monitor.world.sim.errors import ApiError
from monitor.world.sim.exchange import Exchange
from monitor.world.sim.limits import rate_limits_info
from monitor.world.sim.market import (
    DEFAULT_PERMISSIONS,
    SYMBOL_STATUS_FILTERS,
    SYMBOLS,
    SymbolSpec,
    requested_symbols,
)
from monitor.world.sim.state import ApiKey
from monitor.world.sim.views import (
    account_view,
    new_order_view,
    order_view,
    trade_view,
    withdrawal_view,
)


# -- handlers (plain functions over the context) ------------------------------------------
def h_ping(ctx: Ctx) -> object:
    return {}


def h_time(ctx: Ctx) -> object:
    return {"serverTime": ctx.ex.now_ms()}


PERMISSIONS_RANGE = r'^\[("[A-Z0-9_]{1,20}"(,"[A-Z0-9_]{1,20}"){0,}){0,1}\]$'
_PERMISSION_RE = re.compile(r"^[A-Z0-9_]{1,20}$")


def _permissions(raw: str | None) -> set[str]:
    """`permissions` is one name or a JSON array of names (rest-api.md exchangeInfo).

    SIMULATOR CHOICE: a value that is neither answers -1100 with a legal range shaped like the
    one Binance quotes for `symbols`.
    """
    if not raw:
        return set(DEFAULT_PERMISSIONS)
    if _PERMISSION_RE.match(raw):
        return {raw}
    if not re.match(PERMISSIONS_RANGE, raw):
        raise errors.illegal_chars("permissions", PERMISSIONS_RANGE)
    return {str(p) for p in json.loads(raw)}


def _flag(params: dict[str, str], name: str, default: bool) -> bool:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() not in ("true", "false"):
        raise errors.invalid_param(name)
    return raw.lower() == "true"


def h_exchange_info(ctx: Ctx) -> object:
    """`symbol`, `symbols`, `permissions` exclude each other and `symbolStatus` cannot go with
    `symbol`/`symbols` (-1128); without any, symbols with SPOT, MARGIN or LEVERAGED show."""
    p = ctx.params
    names = requested_symbols(p)
    status = p.get("symbolStatus")
    if names is not None and (p.get("permissions") or status):
        raise errors.bad_param_combo()
    if status and status not in SYMBOL_STATUS_FILTERS:
        raise errors.invalid_symbol_status()
    show = _flag(p, "showPermissionSets", True)
    specs: list[SymbolSpec]
    if names is not None:
        specs = [SYMBOLS[n] for n in names]
    else:
        wanted = _permissions(p.get("permissions"))
        specs = [s for s in SYMBOLS.values() if s.permissions() & wanted
                 and (not status or s.status == status)]
    return {"timezone": "UTC", "serverTime": ctx.ex.now_ms(), "rateLimits": rate_limits_info(),
            "exchangeFilters": [], "symbols": [s.info(show) for s in specs]}


def h_account(ctx: Ctx) -> object:
    omit = ctx.params.get("omitZeroBalances", "false").lower() == "true"
    return account_view(ctx.account, True, omit)


def h_new_order(ctx: Ctx) -> object:
    assert ctx.key is not None
    ex, acct = ctx.ex, ctx.account
    ex.limits.check_orders(acct.name, ex.now_ms())
    before = len(acct.trades)
    order = ex.engine.place(acct, ctx.params, ctx.key.label, ctx.ip)
    ex.limits.count_order(acct.name, ex.now_ms())
    c10, c1d = ex.limits.order_counts(acct.name, ex.now_ms())
    ctx.headers["X-MBX-ORDER-COUNT-10S"] = str(c10)
    ctx.headers["X-MBX-ORDER-COUNT-1D"] = str(c1d)
    resp_type = ctx.params.get("newOrderRespType") or (
        "FULL" if order.type in ("LIMIT", "MARKET") else "ACK")
    return new_order_view(order, acct.trades[before:], resp_type, order.time_ms)


def h_get_order(ctx: Ctx) -> object:
    return order_view(ctx.ex.engine.find(ctx.account, ctx.params))


def h_cancel_order(ctx: Ctx) -> object:
    order = ctx.ex.engine.cancel(ctx.account, ctx.params)
    out = order_view(order)
    events = ctx.account.order_events
    out["origClientOrderId"] = order.client_order_id
    out["clientOrderId"] = str(events[-1]["c"]) if events else order.client_order_id
    out["transactTime"] = order.update_ms
    return {k: v for k, v in out.items() if k not in ("time", "updateTime", "isWorking",
                                                     "workingTime", "stopPrice", "icebergQty")}


def h_open_orders(ctx: Ctx) -> object:
    symbol = ctx.params.get("symbol")
    return [order_view(o) for o in ctx.account.orders.values()
            if o.is_open and (not symbol or o.symbol == symbol)]


def _limit(params: dict[str, str]) -> int:
    try:
        n = int(params.get("limit") or 500)
    except ValueError as exc:
        raise errors.bad_value("limit") from exc
    if not 1 <= n <= 1000:
        raise errors.bad_value("limit")
    return n


def _window(items: list, params: dict[str, str], ts: Callable, ident: Callable,
            id_param: str) -> list:
    symbol = params.get("symbol")
    if not symbol:
        raise errors.missing_param("symbol")
    start, end = params.get("startTime"), params.get("endTime")
    from_id = params.get(id_param)
    out = [x for x in items if x.symbol == symbol]
    if from_id:
        out = [x for x in out if ident(x) >= int(from_id)]
    if start:
        out = [x for x in out if ts(x) >= int(start)]
    if end:
        out = [x for x in out if ts(x) <= int(end)]
    n = _limit(params)
    return out[:n] if (start or from_id) else out[-n:]


def h_all_orders(ctx: Ctx) -> object:
    orders = sorted(ctx.account.orders.values(), key=lambda o: o.order_id)
    return [order_view(o) for o in _window(orders, ctx.params, lambda o: o.time_ms,
                                           lambda o: o.order_id, "orderId")]


def h_my_trades(ctx: Ctx) -> object:
    trades = ctx.account.trades
    if ctx.params.get("orderId"):
        trades = [t for t in trades if str(t.order_id) == ctx.params["orderId"]]
        params = {k: v for k, v in ctx.params.items() if k != "orderId"}
    else:
        params = ctx.params
    return [trade_view(t) for t in _window(trades, params, lambda t: t.time_ms,
                                           lambda t: t.trade_id, "fromId")]


def h_order_rate_limit(ctx: Ctx) -> object:
    return ctx.ex.limits.order_limits(ctx.account.name, ctx.ex.now_ms())


def h_retired(ctx: Ctx) -> object:
    raise errors.retired()


def h_api_restrictions(ctx: Ctx) -> object:
    assert ctx.key is not None
    return ctx.key.restrictions()


def h_trading_status(ctx: Ctx) -> object:
    return {"data": {"isLocked": False, "plannedRecoverTime": 0,
                     "triggerCondition": {"GCR": 150, "IFER": 150, "UFR": 300},
                     "updateTime": ctx.account.update_ms}}


def h_account_status(ctx: Ctx) -> object:
    return {"data": "Normal"}


def h_withdraw_history(ctx: Ctx) -> object:
    coin = ctx.params.get("coin")
    rows = [withdrawal_view(w) for w in reversed(ctx.account.withdrawals)
            if not coin or w.coin == coin]
    return rows[: _limit(ctx.params)]


def h_withdraw_apply(ctx: Ctx) -> object:
    return {"id": ctx.ex.engine.withdraw(ctx.account, ctx.params).id}


ENDPOINTS = [
    Endpoint("GET", "/api/v3/ping", fixed(1), None, h_ping),
    Endpoint("GET", "/api/v3/time", fixed(1), None, h_time),
    Endpoint("GET", "/api/v3/exchangeInfo", fixed(20), None, h_exchange_info),
    Endpoint("GET", "/api/v3/account", fixed(20), READ, h_account),
    Endpoint("POST", "/api/v3/order", fixed(1), TRADE, h_new_order, zero_on_success=True),
    Endpoint("GET", "/api/v3/order", fixed(4), READ, h_get_order),
    Endpoint("DELETE", "/api/v3/order", fixed(1), TRADE, h_cancel_order, zero_on_success=True),
    Endpoint("GET", "/api/v3/openOrders", lambda p: 6 if p.get("symbol") else 80, READ,
             h_open_orders),
    Endpoint("GET", "/api/v3/allOrders", fixed(20), READ, h_all_orders),
    Endpoint("GET", "/api/v3/myTrades", lambda p: 5 if p.get("orderId") else 20, READ,
             h_my_trades),
    Endpoint("GET", "/api/v3/rateLimit/order", fixed(40), READ, h_order_rate_limit),
    Endpoint("POST", "/api/v3/userDataStream", fixed(2), None, h_retired),
    Endpoint("PUT", "/api/v3/userDataStream", fixed(2), None, h_retired),
    Endpoint("DELETE", "/api/v3/userDataStream", fixed(2), None, h_retired),
    Endpoint("GET", "/sapi/v1/account/apiRestrictions", fixed(1), READ, h_api_restrictions, "ip"),
    Endpoint("GET", "/sapi/v1/account/apiTradingStatus", fixed(1), READ, h_trading_status, "ip"),
    Endpoint("GET", "/sapi/v1/account/status", fixed(1), READ, h_account_status, "ip"),
    Endpoint("GET", "/sapi/v1/capital/withdraw/history", fixed(18000), READ, h_withdraw_history,
             "uid"),
    Endpoint("POST", "/sapi/v1/capital/withdraw/apply", fixed(900), WITHDRAW, h_withdraw_apply,
             "uid"),
]


def _authenticate(ex: Exchange, ep: Endpoint, request: Request, ip: str,
                  params: dict[str, str], query: bytes, body: bytes) -> ApiKey | None:
    if ep.security is None:
        return None
    key = auth.lookup_key(ex.books, request.headers.get("X-MBX-APIKEY"))
    auth.check_ip(key, ip)
    if ep.security == KEY:
        return key
    auth.check_timestamp(params, ex.now_ms())
    q_signed, q_sig = auth.strip_signature(query)
    b_signed, b_sig = auth.strip_signature(body)
    auth.verify_signature(key, q_signed + b_signed, q_sig or b_sig, in_query=True)
    auth.check_permission(key, ep.security)
    return key


def weight_pool(path: str) -> str:
    """Which IP-weight window a path counts in: spot `/api`, or a futures market's own."""
    head = path.split("/", 2)[1] if path.count("/") >= 2 else ""
    return head if head in ("fapi", "dapi") else "api"


def _weight_headers(ex: Exchange, ip: str, pool: str, now: int) -> dict[str, str]:
    """Every /api answer carries the IP's weight; `x-mbx-used-weight` (no interval) is the
    legacy duplicate real answers still carry (binance-wire.md 2.3). Futures send the 1M one."""
    used = str(ex.limits.used(ip, now, pool))
    if pool != "api":
        return {"X-MBX-USED-WEIGHT-1M": used}
    return {"X-MBX-USED-WEIGHT": used, "X-MBX-USED-WEIGHT-1M": used}


async def _serve(ex: Exchange, ep: Endpoint, request: Request) -> Response:
    ip = request.client.host if request.client else "0.0.0.0"
    headers: dict[str, str] = {}
    if ex.faults.delay_ms:
        await ex.clock.sleep(ex.faults.delay_ms / 1000)
    failed = ex.take_rest_fault()
    if failed is not None:
        return JSONResponse({"code": -1001, "msg": "Internal error; unable to process your "
                             "request. Please try again."}, status_code=failed)
    query = request.scope.get("query_string", b"")
    body = await request.body()
    params = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    params.update(parse_qsl(query.decode("latin-1"), keep_blank_values=True))  # query wins
    weight = ep.weight(params)
    pool = weight_pool(ep.path)
    now = ex.now_ms()
    try:
        if ep.sapi is None:
            ex.limits.charge(ip, ep.path, weight, now, pool)
        key = _authenticate(ex, ep, request, ip, params, query, body)
        if ep.sapi is not None:
            assert key is not None
            uid = ex.books.accounts[key.account].uid
            name, used = ex.limits.charge_sapi(ip, uid, ep.path, weight, ep.sapi == "uid", now)
            headers[name] = str(used)
        result = ep.handler(Ctx(ex, params, ip, key, headers))
        status = 200
        if ep.zero_on_success and ep.sapi is None:
            ex.limits.refund(ip, ep.path, weight, now)
    except ApiError as err:
        result, status = err.body(), err.status
        headers.update(err.headers)
    if ep.sapi is None:
        headers.update(_weight_headers(ex, ip, pool, now))
    return JSONResponse(result, status_code=status, headers=headers)


def _no_such_endpoint(ex: Exchange, request: Request) -> Response:
    """SIMULATOR CHOICE (see errors.no_such_endpoint): JSON 404, no weight charged, and the
    /api weight headers every answer carries."""
    ip = request.client.host if request.client else "0.0.0.0"
    err = errors.no_such_endpoint()
    headers = (_weight_headers(ex, ip, weight_pool(request.url.path), ex.now_ms())
               if not request.url.path.startswith("/sapi/") else {})
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


# Every endpoint the simulator serves, one list: the gate, the routes, the WebSocket API and
# the benchmarks read it.
ALL_ENDPOINTS: list[Endpoint] = [*ENDPOINTS, *marketdata.ENDPOINTS, *trading.ENDPOINTS,
                                 *wallet.ENDPOINTS, *futures_info.ENDPOINTS]
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def build_rest_routes(ex: Exchange) -> list[Route]:
    """One route per path taking every method, then a catch-all: both answer JSON for what the
    simulator does not serve. The catch-all matches every HTTP path, so it comes last and an
    app that adds HTTP routes must put them before these (WebSocket routes are unaffected)."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for ep in ALL_ENDPOINTS:
        by_path.setdefault(ep.path, {})[ep.method] = ep

    def make(path: str, methods: dict[str, Endpoint]) -> Route:
        async def endpoint(request: Request) -> Response:
            ep = methods.get(request.method)
            if ep is None:
                return _no_such_endpoint(ex, request)
            return await _serve(ex, ep, request)

        return Route(path, endpoint, methods=HTTP_METHODS)

    async def fallback(request: Request) -> Response:
        return _no_such_endpoint(ex, request)

    return [*(make(p, m) for p, m in by_path.items()),
            Route("/{path:path}", fallback, methods=HTTP_METHODS)]


def rest_app(ex: Exchange) -> Starlette:
    return Starlette(routes=build_rest_routes(ex))
