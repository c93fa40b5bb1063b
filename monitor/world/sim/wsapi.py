"""The WebSocket API (/ws-api/v3): user-data subscriptions the way Binance serves spot today.

Frames follow binance-wire.md 1.2 and 4.2: requests `{"id","method","params"}`, answers
`{"id","status","result","rateLimits"}` or `{"id","status","error",...}`, events wrapped as
`{"subscriptionId": n, "event": {...}}`. Protocol pings come from uvicorn (every 20 s of clock
time, scaled by the clock's speed); the 24-hour limit is checked on the clock here.

Market data, trading and account methods are one table, `MIRRORS`: each WS method names the
REST endpoint (method, path) it mirrors in `rest.ALL_ENDPOINTS`, whose handler, weight and
security serve it. Signed methods verify the WS API signature (params sorted by name, apiKey
included; `auth.ws_payload`). A mirrored method whose REST endpoint is not served (yet)
answers the unknown-method error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.websockets import WebSocket, WebSocketDisconnect

from monitor.world.sim import auth, errors, rest
from monitor.world.sim.endpoint import KEY, Ctx, Endpoint
from monitor.world.sim.errors import ApiError
from monitor.world.sim.exchange import Exchange
from monitor.world.sim.limits import ORDERS_1D_LIMIT, ORDERS_10S_LIMIT, WEIGHT_LIMIT
from monitor.world.sim.state import ApiKey
from monitor.world.sim.streams import Connection
from monitor.world.sim.views import cancel_view, order_list_view

MAX_CONNECTION_MS = 24 * 3600 * 1000
METHOD_WEIGHT = {
    "ping": 1, "time": 1, "userDataStream.subscribe.signature": 2,
    "userDataStream.subscribe": 2, "session.logon": 2, "session.logout": 2,
    "userDataStream.unsubscribe": 2, "session.subscriptions": 2, "session.status": 2,
    "userDataStream.start": 2, "userDataStream.ping": 2, "userDataStream.stop": 2,
}


# WS API method -> the REST endpoint it mirrors (web-socket-api.md names each pair).
MIRRORS: dict[str, tuple[str, str]] = {
    "exchangeInfo": ("GET", "/api/v3/exchangeInfo"),
    "depth": ("GET", "/api/v3/depth"),
    "trades.recent": ("GET", "/api/v3/trades"),
    "trades.historical": ("GET", "/api/v3/historicalTrades"),
    "trades.aggregate": ("GET", "/api/v3/aggTrades"),
    "klines": ("GET", "/api/v3/klines"),
    "uiKlines": ("GET", "/api/v3/uiKlines"),
    "avgPrice": ("GET", "/api/v3/avgPrice"),
    "ticker.24hr": ("GET", "/api/v3/ticker/24hr"),
    "ticker.tradingDay": ("GET", "/api/v3/ticker/tradingDay"),
    "ticker": ("GET", "/api/v3/ticker"),
    "ticker.price": ("GET", "/api/v3/ticker/price"),
    "ticker.book": ("GET", "/api/v3/ticker/bookTicker"),
    "order.place": ("POST", "/api/v3/order"),
    "order.test": ("POST", "/api/v3/order/test"),
    "order.status": ("GET", "/api/v3/order"),
    "order.cancel": ("DELETE", "/api/v3/order"),
    "order.cancelReplace": ("POST", "/api/v3/order/cancelReplace"),
    "openOrders.status": ("GET", "/api/v3/openOrders"),
    "openOrders.cancelAll": ("DELETE", "/api/v3/openOrders"),
    "orderList.place.oco": ("POST", "/api/v3/orderList/oco"),
    "orderList.place.oto": ("POST", "/api/v3/orderList/oto"),
    "orderList.place.otoco": ("POST", "/api/v3/orderList/otoco"),
    "orderList.status": ("GET", "/api/v3/orderList"),
    "orderList.cancel": ("DELETE", "/api/v3/orderList"),
    "openOrderLists.status": ("GET", "/api/v3/openOrderList"),
    "allOrderLists": ("GET", "/api/v3/allOrderList"),
    "account.status": ("GET", "/api/v3/account"),
    "account.commission": ("GET", "/api/v3/account/commission"),
    "account.rateLimits.orders": ("GET", "/api/v3/rateLimit/order"),
    "allOrders": ("GET", "/api/v3/allOrders"),
    "myTrades": ("GET", "/api/v3/myTrades"),
}
_SERVED = {(ep.method, ep.path): ep for ep in rest.ALL_ENDPOINTS}


def mirrored(method: str) -> Endpoint | None:
    """The REST endpoint serving WS `method`, or None when it is not mirrored or not served."""
    route = MIRRORS.get(method)
    return _SERVED.get(route) if route else None


def _rate_limits(ex: Exchange, ip: str, account: str | None = None) -> list[dict[str, object]]:
    """REQUEST_WEIGHT always; the account's ORDERS counters on order placements."""
    now = ex.now_ms()
    out: list[dict[str, object]] = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": WEIGHT_LIMIT, "count": ex.limits.used(ip, now)}]
    if account is not None:
        c10, c1d = ex.limits.order_counts(account, now)
        out += [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                 "limit": ORDERS_10S_LIMIT, "count": c10},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                 "limit": ORDERS_1D_LIMIT, "count": c1d}]
    return out


def _rest_value(value: object) -> str:
    """A WS param as the REST handler reads it: arrays as compact JSON (`symbols`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _ws_exchange_info(result: object) -> object:
    """WS API exchangeInfo lists CONNECTIONS (300 per 5 minutes) where REST has RAW_REQUESTS
    (binance-wire.md 2.1)."""
    if isinstance(result, dict):
        result["rateLimits"] = [
            {"rateLimitType": "CONNECTIONS", "interval": "MINUTE", "intervalNum": 5,
             "limit": 300} if r.get("rateLimitType") == "RAW_REQUESTS" else r
            for r in result["rateLimits"]]
    return result


def _mirror(ex: Exchange, conn: Connection, method: str, ep: Endpoint,
            params: dict[str, object]) -> tuple[object, str | None]:
    """Serve `method` through its REST endpoint; returns the result and, for order
    placements, the account whose ORDERS counters the answer's rateLimits show."""
    str_params = {k: _rest_value(v) for k, v in params.items()}
    now = ex.now_ms()
    weight = ep.weight(str_params)
    ex.limits.charge(conn.ip, f"ws:{method}", weight, now)
    key = None
    if ep.security is not None:
        # after session.logon a request may omit apiKey and signature: the session's key
        # signs it; an explicit apiKey (and signature) overrides the session for this request
        by_session = "apiKey" not in str_params and conn.session_key is not None
        key = auth.lookup_key(ex.books, conn.session_key if by_session
                              else str_params.get("apiKey"))
        auth.check_ip(key, conn.ip)
        if ep.security != KEY:
            auth.check_timestamp(str_params, now)
            if not by_session:
                sig = params.get("signature")
                auth.verify_signature(key, auth.ws_payloads(params), str(sig) if sig else None)
            auth.check_permission(key, ep.security)
    handler_params = {k: v for k, v in str_params.items() if k not in ("apiKey", "signature")}
    headers: dict[str, str] = {}
    ctx = Ctx(ex, handler_params, conn.ip, key, headers)
    result = ep.handler(ctx)
    if method == "order.cancel":
        result = _cancelled_list(ctx, result)
    if ep.zero_on_success:
        ex.limits.refund(conn.ip, f"ws:{method}", weight, now)
    if method == "exchangeInfo":
        result = _ws_exchange_info(result)
    counted = key.account if key is not None and "X-MBX-ORDER-COUNT-10S" in headers else None
    return result, counted


def _cancelled_list(ctx: Ctx, result: object) -> object:
    """order.cancel on an order of an order list cancels the whole list and answers with the
    list and its cancellation reports (trading-requests.md, order.cancel: "When an order list
    is canceled"); a singular order's answer is kept."""
    if not isinstance(result, dict) or result.get("orderListId", -1) == -1:
        return result
    orders = ctx.account.orders
    lst = ctx.account.order_lists[int(str(result["orderListId"]))]
    cancel_id = str(result["clientOrderId"])
    reports = [cancel_view(orders[oid], cancel_id) for oid in lst.order_ids
               if orders[oid].status == "CANCELED"]
    return order_list_view(lst, orders, reports)


def _error(ex: Exchange, req_id: object, err: ApiError, ip: str) -> dict[str, object]:
    body: dict[str, object] = {"code": err.code, "msg": err.msg}
    if err.status in (418, 429):
        retry = int(err.headers.get("Retry-After", "1"))
        body["data"] = {"serverTime": ex.now_ms(), "retryAfter": ex.now_ms() + retry * 1000}
    return {"id": req_id, "status": err.status, "error": body,
            "rateLimits": _rate_limits(ex, ip)}


def _signed_key(ex: Exchange, conn: Connection, params: dict[str, object]) -> ApiKey:
    """The key of a request signed in its params (apiKey, timestamp, signature)."""
    key = auth.lookup_key(ex.books, str(params.get("apiKey") or ""))
    auth.check_ip(key, conn.ip)
    auth.check_timestamp({k: str(v) for k, v in params.items()}, ex.now_ms())
    sig = params.get("signature")
    auth.verify_signature(key, auth.ws_payloads(params), str(sig) if sig else None)
    return key


def _session(ex: Exchange, conn: Connection) -> dict[str, object]:
    """session.logon/status/logout's result: apiKey and authorizedSince null when logged out."""
    return {"apiKey": conn.session_key, "authorizedSince": conn.authorized_since,
            "connectedSince": conn.connected_ms, "returnRateLimits": True,
            "serverTime": ex.now_ms(), "userDataStream": bool(conn.subs)}


def _logon(ex: Exchange, conn: Connection, params: dict[str, object]) -> dict[str, object]:
    """Only Ed25519 keys may log on (web-socket-api.md, Session Authentication); the docs give
    no code for another type, the reported answer is the invalid-signature one."""
    key = auth.lookup_key(ex.books, str(params.get("apiKey") or ""))
    if key.public_key is None or auth.public_key_type(key.public_key) != "ed25519":
        raise errors.bad_signature()
    key = _signed_key(ex, conn, params)
    conn.session_key, conn.authorized_since = key.api_key, ex.now_ms()
    return _session(ex, conn)


def _subscribe(ex: Exchange, conn: Connection, params: dict[str, object],
               *, by_session: bool = False) -> object:
    """userDataStream.subscribe.signature (any key type, signed in its params) or, after
    session.logon, userDataStream.subscribe (no params: the logged-on account)."""
    if by_session:
        if conn.session_key is None:  # the docs name no code; -2015 is "no valid key"
            raise errors.rejected_key()
        key = auth.lookup_key(ex.books, conn.session_key)
    else:
        key = _signed_key(ex, conn, params)
    if any(acct == key.account for acct, _k in conn.subs.values()):
        raise ApiError(400, -2035, "User Data Stream subscription already active.")
    if conn.next_sub >= 65535:
        raise ApiError(400, -2042, "Maximum subscription ID reached for this connection.")
    sub_id = conn.next_sub
    conn.next_sub += 1
    conn.subs[sub_id] = (key.account, key.api_key)
    if by_session:
        conn.logon_sub = sub_id
    return {"subscriptionId": sub_id}


def _unsubscribe(ex: Exchange, conn: Connection, params: dict[str, object]) -> list[int]:
    wanted = params.get("subscriptionId")
    ids = list(conn.subs) if wanted is None else [int(str(wanted))]
    if not ids or any(i not in conn.subs for i in ids):
        raise ApiError(400, -2036, "User Data Stream subscription not active.")
    return ids


def _revalidate(ex: Exchange, conn: Connection) -> bool:
    """A key that turned invalid mid-session revokes the session on the next request."""
    held = [api_key for _acct, api_key in conn.subs.values()]
    for api_key in held + ([conn.session_key] if conn.session_key else []):
        key = ex.books.keys.get(api_key)
        if key is None or (key.ip_whitelist is not None and conn.ip not in key.ip_whitelist):
            conn.subs.clear()
            conn.session_key = conn.authorized_since = conn.logon_sub = None
            return False
    return True


async def _sender(ws: WebSocket, ex: Exchange, conn: Connection) -> None:
    while True:
        frame = await conn.queue.get()
        if frame is None:
            return
        while conn.stalled_until_ms > ex.now_ms():  # pings continue, data waits
            await ex.clock.sleep(0.5)
        await ws.send_text(json.dumps(frame))


async def _lifetime(ex: Exchange, conn: Connection) -> None:
    while ex.now_ms() - conn.connected_ms < MAX_CONNECTION_MS:
        await ex.clock.sleep(min(60.0, (MAX_CONNECTION_MS - ex.now_ms() + conn.connected_ms)
                                 / 1000 + 0.001))
    conn.close_reason = "24h"
    conn.push(None)


async def _handle(ex: Exchange, conn: Connection, frame: dict) -> None:
    req_id, method = frame.get("id"), frame.get("method")
    params = frame.get("params") or {}
    if not isinstance(method, str) or not isinstance(params, dict):
        raise ApiError(400, -1000, "Malformed request.")
    ep = mirrored(method)
    if ep is None:
        ex.limits.charge(conn.ip, f"ws:{method}", METHOD_WEIGHT.get(method, 1), ex.now_ms())
    if (conn.subs or conn.session_key) and not _revalidate(ex, conn):
        conn.push({"id": None, "status": 401, "error": errors.rejected_key().body()})
        return
    result: object
    if ep is not None:
        result, counted = _mirror(ex, conn, method, ep, params)
        conn.push({"id": req_id, "status": 200, "result": result,
                   "rateLimits": _rate_limits(ex, conn.ip, counted)})
        return
    if method == "ping":
        result = {}
    elif method == "time":
        result = {"serverTime": ex.now_ms()}
    elif method == "userDataStream.subscribe.signature":
        result = _subscribe(ex, conn, params)
    elif method == "userDataStream.subscribe":
        result = _subscribe(ex, conn, params, by_session=True)
    elif method == "session.logon":
        result = _logon(ex, conn, params)
    elif method == "session.logout":
        ended, conn.logon_sub = conn.logon_sub, None
        conn.session_key = conn.authorized_since = None
        if ended is not None and ended in conn.subs:
            ex.hub.terminate(conn, ended)  # signature-based subscriptions survive the logout
        result = _session(ex, conn)
    elif method == "userDataStream.unsubscribe":
        ids = _unsubscribe(ex, conn, params)
        conn.push({"id": req_id, "status": 200, "result": {},
                   "rateLimits": _rate_limits(ex, conn.ip)})
        for sub_id in ids:
            ex.hub.terminate(conn, sub_id)
        return
    elif method == "session.subscriptions":
        result = [{"subscriptionId": i} for i in sorted(conn.subs)]
    elif method == "session.status":
        result = _session(ex, conn)
    elif method.startswith("userDataStream.") and method.split(".")[1] in ("start", "ping",
                                                                           "stop"):
        raise errors.retired()
    else:
        raise ApiError(400, -1000, f"Unknown method '{method}'.")
    conn.push({"id": req_id, "status": 200, "result": result,
               "rateLimits": _rate_limits(ex, conn.ip)})


async def ws_api(ws: WebSocket, ex: Exchange) -> None:
    ip = ws.client.host if ws.client else "0.0.0.0"
    try:
        ex.limits.charge(ip, "ws:connect", 2, ex.now_ms())
    except ApiError:
        await ws.close(code=1008)
        return
    await ws.accept()
    conn = Connection(ip=ip, connected_ms=ex.now_ms(), scope=ws.scope)
    ex.hub.connections.append(conn)
    sender = asyncio.create_task(_sender(ws, ex, conn))
    lifetime = asyncio.create_task(_lifetime(ex, conn))
    reader = asyncio.create_task(_reader(ws, ex, conn))
    try:
        await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ex.hub.connections.remove(conn)
        for task in (sender, lifetime, reader):
            task.cancel()
        for task in (sender, lifetime, reader):
            with contextlib.suppress(BaseException):
                await task
        if conn.close_reason != "dropped":
            with contextlib.suppress(Exception):
                await ws.close(code=1000)


async def _reader(ws: WebSocket, ex: Exchange, conn: Connection) -> None:
    try:
        while True:
            text = await ws.receive_text()
            try:
                frame = json.loads(text)
                if not isinstance(frame, dict):
                    raise ValueError("not an object")
            except ValueError:
                conn.push({"id": None, "status": 400,
                           "error": {"code": -1000, "msg": "Malformed request."}})
                continue
            try:
                await _handle(ex, conn, frame)
            except ApiError as err:
                conn.push(_error(ex, frame.get("id"), err, conn.ip))
    except (WebSocketDisconnect, RuntimeError):
        conn.push(None)
