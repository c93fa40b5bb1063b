"""Every simulator answer against Binance's documented example for the same call.

The examples live in tests/world/sim/documented/*.json, copied from Binance's docs with their
source. Each answer is compared recursively: the same key set, the same JSON type per key (a
documented STRING number stays a string), arrays element by element against the example's element of
the same kind (filters by filterType, mixed arrays by shape, positional tuples by position). Keys
the docs call conditional are listed per call as `optional` (or `nullable`) with the doc's reason.

Every REST route in ALL_ENDPOINTS and every WebSocket API method the simulator answers (its own
methods and every served wsapi.MIRRORS entry) must have a documented example and a call here,
so the check grows with the simulator; every public stream kind is subscribed at the real
Simulator.stream_url (combined, raw and SUBSCRIBE control replies). Mismatches the simulator
still has are listed in documented/known_mismatches.json with the reason: the suite fails when
a new one appears and when a listed one is gone (then delete it from the list).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from websockets.asyncio.client import ClientConnection, connect

from monitor.binance.signing import sign_ws_params
from monitor.core.keys import Ed25519Signer
from monitor.world.sim import Simulator, streamnames, wsapi
from monitor.world.sim.auth import hmac_hex, ws_payload
from monitor.world.sim.client import ActorClient
from monitor.world.sim.rest import ALL_ENDPOINTS

DOC_DIR = Path(__file__).parent / "documented"
TRADER = {"enableReading": True, "enableSpotAndMarginTrading": True, "enableWithdrawals": True}


# -- the documented examples ---------------------------------------------------------------
def _load(name: str) -> dict[str, Any]:
    return json.loads((DOC_DIR / name).read_text())


def _rest_entries() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(DOC_DIR.glob("rest_*.json")):
        for call, entry in _load(path.name)["calls"].items():
            assert call not in out, f"{path.name}: {call} documented twice"
            out[call] = entry
    return out


REST = _rest_entries()
WS = _load("ws_api.json")
EVENTS = _load("user_data_events.json")["events"]
STREAMS = _load("streams.json")["streams"]
ERRORS = _load("errors.json")
OPTIONAL_SETS = _load("optional_sets.json")["sets"]
KNOWN: dict[str, list[str]] = {k: v for k, v in _load("known_mismatches.json").items()
                               if not k.startswith("_")}


# -- the comparison ------------------------------------------------------------------------
def jtype(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not JSON: {value!r}")


def _norm(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


@dataclass
class Spec:
    """One call's documented example plus the doc's conditional keys."""

    example: Any
    optional: dict[str, dict[str, Any]] = field(default_factory=dict)
    nullable: dict[str, dict[str, Any]] = field(default_factory=dict)
    tuples: set[str] = field(default_factory=set)
    kinds: list[dict[str, Any]] = field(default_factory=list)  # extra filterType examples
    elements: dict[str, Any] = field(default_factory=dict)  # element of an empty doc array

    @classmethod
    def of(cls, entry: dict[str, Any], variant: str | None = None) -> Spec:
        example = entry["variants"][variant] if variant else entry["example"]
        optional = dict(entry.get("optional", {}))
        for name in entry.get("optional_sets", []):
            optional.update(OPTIONAL_SETS[name]["optional"])
        kinds: list[dict[str, Any]] = []
        if "kinds_from" in entry:
            kinds = list(_walk_filters(REST[entry["kinds_from"]["call"]]["example"]))
        elements = {k: v["example"] for k, v in entry.get("elements", {}).items()}
        return cls(example, optional, dict(entry.get("nullable", {})),
                   set(entry.get("tuples", [])), kinds, elements)

    def _match(self, table: dict[str, dict[str, Any]], path: str) -> dict[str, Any] | None:
        norm = _norm(path)
        for pattern, info in table.items():
            if pattern == norm:
                return info
            if pattern.startswith("*."):  # the key at any depth
                key = pattern[2:]
                if norm == key or norm.endswith("." + key):
                    return info
        return None

    def compare(self, got: Any, allow_empty: tuple[str, ...] = ()) -> list[str]:
        out: list[str] = []
        self._cmp(got, self.example, "", out, allow_empty)
        return out

    def _cmp(self, got: Any, doc: Any, path: str, out: list[str],
             allow_empty: tuple[str, ...]) -> None:
        where = path or "<root>"
        nullable = self._match(self.nullable, path)
        if got is None and nullable is not None:
            return
        if doc is None and got is not None and nullable is not None and "example" in nullable:
            doc = nullable["example"]
        if jtype(got) != jtype(doc):
            out.append(f"{where}: documented {jtype(doc)}, got {jtype(got)}")
            return
        if isinstance(doc, dict):
            self._cmp_object(got, doc, path, out, allow_empty)
        elif isinstance(doc, list):
            self._cmp_list(got, doc, path, out, allow_empty)

    def _cmp_object(self, got: dict, doc: dict, path: str, out: list[str],
                    allow_empty: tuple[str, ...]) -> None:
        prefix = f"{path}." if path else ""
        for key in doc:
            if key not in got and self._match(self.optional, prefix + key) is None:
                out.append(f"{prefix}{key}: missing (documented key)")
        for key in got:
            sub = prefix + key
            if key in doc:
                self._cmp(got[key], doc[key], sub, out, allow_empty)
                continue
            opt = self._match(self.optional, sub)
            if opt is None:
                out.append(f"{sub}: extra key, not in the documented example")
            elif "example" in opt:
                self._cmp(got[key], opt["example"], sub, out, allow_empty)

    def _cmp_list(self, got: list, doc: list, path: str, out: list[str],
                  allow_empty: tuple[str, ...]) -> None:
        if _norm(path) in self.tuples:
            if len(got) != len(doc):
                out.append(f"{path}: documented {len(doc)} positions, got {len(got)}")
            for i, (g, d) in enumerate(zip(got, doc, strict=False)):
                self._cmp(g, d, f"{path}[{i}]", out, allow_empty)
            return
        if not got:
            if doc and _norm(path) not in allow_empty:
                out.append(f"{path}: empty array; nothing compared with the documented element")
            return
        if not doc and _norm(path) in self.elements:
            doc = [self.elements[_norm(path)]]
        if not doc:
            out.append(f"{path}: the example's array is empty; {len(got)} element(s) unchecked")
            return
        for i, g in enumerate(got):
            d = self._pick(g, doc)
            if d is None:
                out.append(f"{path}[{i}].filterType: no documented example for filterType "
                           f"{g.get('filterType')!r}")
                continue
            self._cmp(g, d, f"{path}[{i}]", out, allow_empty)

    def _pick(self, got: Any, doc: list) -> Any:
        if isinstance(got, dict) and "filterType" in got:
            pool = [d for d in doc + self.kinds if isinstance(d, dict)]
            return next((d for d in pool if d.get("filterType") == got["filterType"]), None)
        if isinstance(got, dict):
            objects = [d for d in doc if isinstance(d, dict)]
            if objects:
                return max(objects, key=lambda d: len(set(d) & set(got))
                           - len(set(d) ^ set(got)))
        same = [d for d in doc if jtype(d) == jtype(got)]
        return same[0] if same else doc[0]


def _walk_filters(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "filterType" in node:
            found.append(node)
        for v in node.values():
            found.extend(_walk_filters(v))
    elif isinstance(node, list):
        for v in node:
            found.extend(_walk_filters(v))
    return found


def _msg_matches(msg: str, templates: list[str]) -> bool:
    return any(re.fullmatch(re.escape(t).replace("%s", ".+"), msg) for t in templates)


# -- the JSON files themselves -------------------------------------------------------------
def test_every_documented_entry_names_its_source_and_example() -> None:
    for name in sorted(p.name for p in DOC_DIR.glob("*.json")):
        data = _load(name)
        assert data.get("source") or name == "known_mismatches.json", f"{name}: no source"
    groups = [REST, WS["methods"], EVENTS, STREAMS]
    for group in groups:
        for call, entry in group.items():
            assert entry.get("source"), f"{call}: no source"
            assert "example" in entry or "variants" in entry, f"{call}: no example"
            for info in [*entry.get("optional", {}).values(), *entry.get("nullable", {}).values()]:
                assert info.get("reason"), f"{call}: optional/nullable key without the doc's reason"
            for name in entry.get("optional_sets", []):
                assert name in OPTIONAL_SETS, f"{call}: unknown optional set {name}"


def test_the_comparison_catches_missing_extra_and_retyped_keys() -> None:
    spec = Spec.of(REST["GET /api/v3/time"])
    assert spec.compare({"serverTime": 1}) == []
    assert spec.compare({"serverTime": "1"}) == ["serverTime: documented int, got str"]
    assert spec.compare({}) == ["serverTime: missing (documented key)"]
    assert spec.compare({"serverTime": 1, "x": 2}) == [
        "x: extra key, not in the documented example"]
    spec = Spec.of(REST["GET /api/v3/exchangeInfo"])
    info = json.loads(json.dumps(spec.example))
    info["symbols"][0]["filters"][3]["minQty"] = 0.001  # a STRING number sent as a number
    info["symbols"][0]["filters"].append({"filterType": "NOT_A_FILTER"})
    del info["sors"]  # documented as optional
    assert spec.compare(info) == [
        "symbols[0].filters[3].minQty: documented str, got float",
        "symbols[0].filters[15].filterType: no documented example for filterType 'NOT_A_FILTER'"]
    klines = Spec.of(REST["GET /api/v3/klines"])
    row = list(klines.example[0])
    assert klines.compare([row[:-1]]) == ["[0]: documented 12 positions, got 11"]


# -- completeness: the check grows with the simulator -------------------------------------
def test_every_rest_route_has_a_documented_example_and_a_call_here() -> None:
    retired = ERRORS["retired_rest"]
    routes = {f"{ep.method} {ep.path}" for ep in ALL_ENDPOINTS}
    undocumented = sorted(r for r in routes if r not in REST and r not in retired)
    assert not undocumented, f"routes without a documented example: {undocumented}"
    uncalled = sorted(r for r in routes if r not in DRIVERS)
    assert not uncalled, f"routes test_documented.py does not call yet: {uncalled}"


def _ws_methods() -> set[str]:
    """Every WS API method the simulator answers: its own methods and the REST mirrors it
    serves (a mirror whose REST endpoint is not served answers the unknown-method error)."""
    own = set(getattr(wsapi, "METHODS", None) or getattr(wsapi, "METHOD_WEIGHT", {}))
    mirrors = {m for m in getattr(wsapi, "MIRRORS", {}) if wsapi.mirrored(m) is not None}
    return own | mirrors


def test_every_ws_api_method_has_a_documented_example_and_a_call_here() -> None:
    methods = _ws_methods()
    undocumented = sorted(m for m in methods
                          if m not in WS["methods"] and m not in WS["retired"])
    assert not undocumented, f"WS API methods without a documented example: {undocumented}"
    uncalled = sorted(m for m in methods if m not in WS_CALLED)
    assert not uncalled, f"WS API methods test_documented.py does not call yet: {uncalled}"


# -- REST: one call per route --------------------------------------------------------------
@dataclass
class World:
    sim: Simulator
    bot: ActorClient
    state: dict[str, Any] = field(default_factory=dict)

    async def call(self, call: str, params: dict[str, Any] | None = None) -> httpx.Response:
        method, path = call.split(" ", 1)
        ep = next(e for e in ALL_ENDPOINTS if e.method == method and e.path == path)
        if ep.security is None:
            return await self.bot.public(method, path, params)
        if ep.security == "KEY":
            return await self.bot._http.request(method, path, params=params,
                                                headers={"X-MBX-APIKEY": self.bot.api_key})
        return await self.bot.signed(method, path, params)

    async def order(self, **params: Any) -> dict[str, Any]:
        r = await self.bot.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", **params})
        assert r.status_code == 200, r.text
        return r.json()

    async def resting(self, cid: str, resp: str = "ACK") -> dict[str, Any]:
        return await self.order(side="BUY", type="LIMIT", timeInForce="GTC",
                                quantity="0.001", price="50000.00", newClientOrderId=cid,
                                newOrderRespType=resp)


Driver = Callable[[World], Awaitable[list[tuple[str | None, Any]]]]
DRIVERS: dict[str, Driver] = {}


def driver(*calls: str) -> Callable[[Driver], Driver]:
    def register(fn: Driver) -> Driver:
        for call in calls:
            DRIVERS[call] = fn
        return fn
    return register


def _one(call: str, params: dict[str, Any] | None = None,
         variant: str | None = None) -> Driver:
    async def run(w: World) -> list[tuple[str | None, Any]]:
        r = await w.call(call, params)
        assert r.status_code == 200, f"{call}: {r.status_code} {r.text}"
        return [(variant, r.json())]
    return run


def _variants(call: str, table: dict[str, dict[str, Any]]) -> Driver:
    async def run(w: World) -> list[tuple[str | None, Any]]:
        out: list[tuple[str | None, Any]] = []
        for variant, params in table.items():
            r = await w.call(call, params)
            assert r.status_code == 200, f"{call} {variant}: {r.status_code} {r.text}"
            out.append((variant, r.json()))
        return out
    return run


SYM = {"symbol": "BTCUSDT"}
SYMS = {"symbols": '["BTCUSDT","ETHUSDT"]'}
for _call, _params in {
    "GET /api/v3/ping": None, "GET /api/v3/time": None, "GET /api/v3/exchangeInfo": None,
    "GET /api/v3/account": None, "GET /api/v3/openOrders": SYM, "GET /api/v3/allOrders": SYM,
    "GET /api/v3/myTrades": SYM, "GET /api/v3/rateLimit/order": None,
    "GET /api/v3/depth": SYM, "GET /api/v3/trades": SYM, "GET /api/v3/historicalTrades": SYM,
    "GET /api/v3/aggTrades": SYM, "GET /api/v3/klines": {**SYM, "interval": "1m"},
    "GET /api/v3/uiKlines": {**SYM, "interval": "1m"}, "GET /api/v3/avgPrice": SYM,
    "GET /api/v3/account/commission": SYM, "GET /api/v3/openOrderList": None,
    "GET /api/v3/allOrderList": None,
    "GET /sapi/v1/account/apiRestrictions": None, "GET /sapi/v1/account/apiTradingStatus": None,
    "GET /sapi/v1/account/status": None, "GET /sapi/v1/capital/withdraw/history": None,
    "GET /sapi/v1/capital/config/getall": None, "GET /sapi/v1/asset/tradeFee": None,
    "GET /sapi/v1/margin/allPairs": None, "GET /sapi/v1/margin/isolated/allPairs": None,
    "GET /fapi/v1/exchangeInfo": None, "GET /dapi/v1/exchangeInfo": None,
}.items():
    DRIVERS[_call] = _one(_call, _params)

DRIVERS["GET /api/v3/ticker/24hr"] = _variants("GET /api/v3/ticker/24hr", {
    "full": SYM, "full_list": {}, "mini": {**SYM, "type": "MINI"}, "mini_list": {"type": "MINI"}})
DRIVERS["GET /api/v3/ticker/tradingDay"] = _variants("GET /api/v3/ticker/tradingDay", {
    "full": SYM, "full_list": SYMS, "mini": {**SYM, "type": "MINI"}})
DRIVERS["GET /api/v3/ticker/price"] = _variants("GET /api/v3/ticker/price",
                                                {"one": SYM, "list": {}})
DRIVERS["GET /api/v3/ticker/bookTicker"] = _variants("GET /api/v3/ticker/bookTicker",
                                                     {"one": SYM, "list": {}})
DRIVERS["GET /api/v3/ticker"] = _variants("GET /api/v3/ticker", {
    "full": SYM, "full_list": SYMS, "mini": {**SYM, "type": "MINI"}})
DRIVERS["POST /api/v3/order/test"] = _variants("POST /api/v3/order/test", {
    "plain": {**SYM, "side": "BUY", "type": "MARKET", "quantity": "0.001"},
    "computeCommissionRates": {**SYM, "side": "BUY", "type": "MARKET", "quantity": "0.001",
                               "computeCommissionRates": "true"}})


@driver("POST /api/v3/order")
async def _new_order(w: World) -> list[tuple[str | None, Any]]:
    return [("ACK", await w.resting("doc-ack", "ACK")),
            ("RESULT", await w.resting("doc-result", "RESULT")),
            ("FULL", await w.order(side="BUY", type="MARKET", quantity="0.001"))]


@driver("GET /api/v3/order")
async def _get_order(w: World) -> list[tuple[str | None, Any]]:
    placed = await w.resting("doc-get")
    r = await w.call("GET /api/v3/order", {**SYM, "orderId": placed["orderId"]})
    return [(None, r.json())]


@driver("DELETE /api/v3/order")
async def _cancel(w: World) -> list[tuple[str | None, Any]]:
    placed = await w.resting("doc-cancel")
    r = await w.call("DELETE /api/v3/order", {**SYM, "orderId": placed["orderId"]})
    return [(None, r.json())]


@driver("DELETE /api/v3/openOrders")
async def _cancel_all(w: World) -> list[tuple[str | None, Any]]:
    await w.resting("doc-cancel-all")
    r = await w.call("DELETE /api/v3/openOrders", SYM)
    return [(None, r.json())]


@driver("POST /api/v3/order/cancelReplace")
async def _cancel_replace(w: World) -> list[tuple[str | None, Any]]:
    placed = await w.resting("doc-cr")
    r = await w.call("POST /api/v3/order/cancelReplace", {
        **SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
        "price": "49000.00", "cancelReplaceMode": "STOP_ON_FAILURE",
        "cancelOrderId": placed["orderId"], "newOrderRespType": "FULL"})
    return [("success", r.json())]


def _oco_params() -> dict[str, Any]:
    return {**SYM, "side": "SELL", "quantity": "0.001", "aboveType": "LIMIT_MAKER",
            "abovePrice": "80000.00", "belowType": "STOP_LOSS", "belowStopPrice": "50000.00",
            "newOrderRespType": "RESULT"}


async def _order_list(w: World) -> dict[str, Any]:
    if "list" not in w.state:
        r = await w.bot.signed("POST", "/api/v3/orderList/oco", _oco_params())
        assert r.status_code == 200, r.text
        w.state["list"] = r.json()
    return w.state["list"]


@driver("POST /api/v3/orderList/oco")
async def _oco(w: World) -> list[tuple[str | None, Any]]:
    return [(None, await _order_list(w))]


@driver("POST /api/v3/orderList/oto")
async def _oto(w: World) -> list[tuple[str | None, Any]]:
    r = await w.call("POST /api/v3/orderList/oto", {
        **SYM, "workingType": "LIMIT", "workingSide": "BUY", "workingPrice": "50000.00",
        "workingQuantity": "0.001", "workingTimeInForce": "GTC", "pendingType": "LIMIT",
        "pendingSide": "SELL", "pendingPrice": "80000.00", "pendingQuantity": "0.001",
        "pendingTimeInForce": "GTC", "newOrderRespType": "RESULT"})
    return [(None, r.json())]


@driver("POST /api/v3/orderList/otoco")
async def _otoco(w: World) -> list[tuple[str | None, Any]]:
    r = await w.call("POST /api/v3/orderList/otoco", {
        **SYM, "workingType": "LIMIT", "workingSide": "BUY", "workingPrice": "50000.00",
        "workingQuantity": "0.001", "workingTimeInForce": "GTC", "pendingSide": "SELL",
        "pendingQuantity": "0.001", "pendingAboveType": "LIMIT_MAKER",
        "pendingAbovePrice": "80000.00", "pendingBelowType": "STOP_LOSS",
        "pendingBelowStopPrice": "40000.00", "newOrderRespType": "RESULT"})
    return [(None, r.json())]


@driver("POST /api/v3/order/oco")
async def _oco_old(w: World) -> list[tuple[str | None, Any]]:
    r = await w.call("POST /api/v3/order/oco", {
        **SYM, "side": "SELL", "quantity": "0.001", "price": "80000.00",
        "stopPrice": "50000.00", "newOrderRespType": "RESULT"})
    return [(None, r.json())]


@driver("GET /api/v3/orderList")
async def _get_list(w: World) -> list[tuple[str | None, Any]]:
    placed = await _order_list(w)
    r = await w.call("GET /api/v3/orderList", {"orderListId": placed["orderListId"]})
    return [(None, r.json())]


@driver("DELETE /api/v3/orderList")
async def _cancel_list(w: World) -> list[tuple[str | None, Any]]:
    r = await w.bot.signed("POST", "/api/v3/orderList/oco", _oco_params())
    r = await w.call("DELETE /api/v3/orderList", {**SYM, "orderListId": r.json()["orderListId"]})
    return [(None, r.json())]


@driver("PUT /api/v3/order/amend/keepPriority")
async def _amend(w: World) -> list[tuple[str | None, Any]]:
    placed = await w.order(side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.002",
                           price="50000.00", newClientOrderId="doc-amend")
    r = await w.call("PUT /api/v3/order/amend/keepPriority",
                     {**SYM, "orderId": placed["orderId"], "newQty": "0.001"})
    return [(None, r.json())]


@driver("POST /sapi/v1/capital/withdraw/apply")
async def _withdraw(w: World) -> list[tuple[str | None, Any]]:
    r = await w.call("POST /sapi/v1/capital/withdraw/apply",
                     {"coin": "USDT", "address": "0xdeadbeef", "amount": "10",
                      "network": "ETH", "withdrawOrderId": "doc-wd"})
    assert r.status_code == 200, r.text
    return [(None, r.json())]


@driver("POST /api/v3/userDataStream", "PUT /api/v3/userDataStream",
        "DELETE /api/v3/userDataStream")
async def _retired(w: World) -> list[tuple[str | None, Any]]:
    return []  # compared in test_documented_error_bodies


# calls that create the state later calls read (orders, trades, a withdrawal) run first
ORDER = ["POST /sapi/v1/capital/withdraw/apply", "POST /api/v3/order"]
ALLOW_EMPTY: dict[str, tuple[str, ...]] = {
    # the docs' FULL example has fills; a resting order has none (cancelReplace's example: [])
    "POST /api/v3/order/cancelReplace": ("newOrderResponse.fills",),
    # "These are the defined filters in the `Filters` section. All filters are optional."
    "GET /api/v3/exchangeInfo": ("exchangeFilters",),
}


@pytest.fixture
async def world(sim: Simulator) -> Any:
    sim.control.set_price("BTCUSDT", 65000)
    sim.control.set_price("ETHUSDT", 3200)
    key, secret = sim.control.create_key("main", "doc", permissions=TRADER,
                                         ip_whitelist=["127.0.0.2"])
    client = ActorClient(sim.rest_url, "127.0.0.2", key, secret, sim.clock)
    yield World(sim, client)
    await client.aclose()


async def test_rest_answers_match_the_documented_examples(world: World) -> None:
    routes = [f"{ep.method} {ep.path}" for ep in ALL_ENDPOINTS]
    routes = [r for r in ORDER if r in routes] + [r for r in routes if r not in ORDER]
    found: dict[str, list[str]] = {}
    for call in dict.fromkeys(routes):
        if call not in DRIVERS or call not in REST:
            continue  # reported by the completeness test
        for variant, answer in await DRIVERS[call](world):
            name = f"{call} [{variant}]" if variant else call
            found[name] = Spec.of(REST[call], variant).compare(answer, ALLOW_EMPTY.get(call, ()))
    _check_known(found)


# -- errors --------------------------------------------------------------------------------
async def test_documented_error_bodies(world: World) -> None:
    body = Spec(ERRORS["body"]["example"])
    codes = ERRORS["codes"]
    bot = world.bot
    answers: dict[str, httpx.Response] = {
        "-1121": await bot.public("GET", "/api/v3/exchangeInfo", {"symbol": "NOPEUSDT"}),
        "-1102": await bot.signed("GET", "/api/v3/allOrders"),
        "-2010": await bot.signed("POST", "/api/v3/order", {
            **SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "5",
            "price": "60000.00"}),
        "-1022": await bot.signed("GET", "/api/v3/account", corrupt=True),
    }
    stranger = ActorClient(world.sim.rest_url, "127.0.0.3", bot.api_key, bot._secret,
                           world.sim.clock)
    try:
        answers["-2015"] = await stranger.signed("GET", "/api/v3/account")
    finally:
        await stranger.aclose()
    for call in ERRORS["retired_rest"]:
        if any(f"{ep.method} {ep.path}" == call for ep in ALL_ENDPOINTS):
            method, path = call.split(" ", 1)
            answers[f"{call}"] = await bot._http.request(
                method, path, headers={"X-MBX-APIKEY": bot.api_key})
    problems = []
    for want, r in answers.items():
        doc = body.compare(r.json())
        problems += [f"{want}: {m}" for m in doc]
        code = str(r.json().get("code"))
        if want.startswith("-") and code != want:
            problems.append(f"{want}: got code {code}")
        if code not in codes:
            problems.append(f"{want}: code {code} is not in errors.json")
        elif not _msg_matches(str(r.json().get("msg")), codes[code]["messages"]):
            msg = r.json().get("msg")
            problems.append(f"{want}: msg {msg!r} is not a documented {code} message")
        if not 400 <= r.status_code < 500:
            problems.append(f"{want}: HTTP {r.status_code}, documented 4XX")
    assert not problems, "\n".join(problems)


async def test_documented_429_body(sim: Simulator) -> None:
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address="127.0.0.9"),
                                 base_url=sim.rest_url) as http:
        for _ in range(200):  # 80 weight each: past 6,000 within 76 calls
            r = await http.get("/api/v3/openOrders")
            if r.status_code == 429:
                break
    assert r.status_code == 429, f"no 429 after 200 heavy calls: {r.status_code}"
    assert Spec(ERRORS["body"]["example"]).compare(r.json()) == []
    assert r.json()["code"] == ERRORS["http_status"]["429"]["code"]
    assert _msg_matches(r.json()["msg"], ERRORS["codes"]["-1003"]["messages"]), r.json()
    assert "retry-after" in r.headers


# -- WebSocket API and user-data events ----------------------------------------------------
WSYMS = {"symbols": ["BTCUSDT", "ETHUSDT"]}
MINI = {"type": "MINI"}
# (method, variant, params): the market-data mirrors, one call per documented variant
WS_MARKET: list[tuple[str, str | None, dict[str, Any]]] = [
    ("depth", None, {**SYM, "limit": 5}), ("trades.recent", None, {**SYM, "limit": 1}),
    ("trades.historical", None, {**SYM, "limit": 1}),
    ("trades.aggregate", None, {**SYM, "limit": 1}),
    ("klines", None, {**SYM, "interval": "1m", "limit": 2}),
    ("uiKlines", None, {**SYM, "interval": "1m", "limit": 2}), ("avgPrice", None, SYM),
    ("ticker.24hr", "full", SYM), ("ticker.24hr", "mini", {**SYM, **MINI}),
    ("ticker.24hr", "full_list", WSYMS),
    ("ticker.tradingDay", "full", SYM), ("ticker.tradingDay", "full_list", WSYMS),
    ("ticker.tradingDay", "mini", {**SYM, **MINI}),
    ("ticker.tradingDay", "mini_list", {**WSYMS, **MINI}),
    ("ticker", "full", SYM), ("ticker", "mini", {**SYM, **MINI}),
    ("ticker", "full_list", WSYMS),
    ("ticker.price", "one", SYM), ("ticker.price", "list", {}),
    ("ticker.book", "one", SYM), ("ticker.book", "list", WSYMS),
]
# the trading and account mirrors _ws_trading_calls makes, in its order
WS_TRADING = ["order.test", "order.place", "order.status", "openOrders.status", "order.cancel",
              "order.cancelReplace", "orderList.place.oco", "orderList.status",
              "openOrderLists.status", "allOrderLists", "orderList.place.oto",
              "orderList.place.otoco", "orderList.cancel", "openOrders.cancelAll",
              "account.status", "account.commission", "account.rateLimits.orders",
              "allOrders", "myTrades"]
WS_CALLED: set[str] = {"ping", "time", "session.status", "session.subscriptions",
                       "userDataStream.subscribe.signature", "userDataStream.unsubscribe",
                       "exchangeInfo", "userDataStream.start", "userDataStream.ping",
                       "userDataStream.stop", "session.logon", "userDataStream.subscribe",
                       "session.logout", *(m for m, _v, _p in WS_MARKET), *WS_TRADING}
WsCall = Callable[[str, str | None, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _ws_trading_calls(call: WsCall) -> None:
    """Every trading and account mirror once per documented variant, on state made here."""
    market = {**SYM, "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    resting = {**SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
               "quantity": "0.001", "price": "50000.00"}
    await call("order.test", "plain", market)
    await call("order.test", "computeCommissionRates", {**market, "computeCommissionRates": True})
    ack = (await call("order.place", "ACK", {**resting, "newClientOrderId": "ws-ack",
                                             "newOrderRespType": "ACK"}))["result"]
    res = (await call("order.place", "RESULT", {**resting, "newClientOrderId": "ws-result",
                                                "newOrderRespType": "RESULT"}))["result"]
    await call("order.place", "FULL", {**market, "newOrderRespType": "FULL"})
    await call("order.status", None, {**SYM, "orderId": ack["orderId"]})
    await call("openOrders.status", None, SYM)
    await call("order.cancel", "order", {**SYM, "orderId": res["orderId"]})
    await call("order.cancelReplace", "success", {
        **resting, "price": "49000.00", "cancelReplaceMode": "STOP_ON_FAILURE",
        "cancelOrderId": ack["orderId"], "newOrderRespType": "RESULT"})
    leg = (await call("orderList.place.oco", None, _oco_params()))["result"]["orders"][0]
    await call("order.cancel", "orderList", {**SYM, "orderId": leg["orderId"]})
    oco = (await call("orderList.place.oco", None, _oco_params()))["result"]
    await call("orderList.status", None, {"orderListId": oco["orderListId"]})
    await call("openOrderLists.status", None, {})
    await call("allOrderLists", None, {})
    await call("orderList.place.oto", None, {
        **SYM, "workingType": "LIMIT", "workingSide": "BUY", "workingPrice": "50000.00",
        "workingQuantity": "0.001", "workingTimeInForce": "GTC", "pendingType": "MARKET",
        "pendingSide": "SELL", "pendingQuantity": "0.001", "newOrderRespType": "RESULT"})
    await call("orderList.place.otoco", None, {
        **SYM, "workingType": "LIMIT", "workingSide": "BUY", "workingPrice": "50000.00",
        "workingQuantity": "0.001", "workingTimeInForce": "GTC", "pendingSide": "SELL",
        "pendingQuantity": "0.001", "pendingAboveType": "LIMIT_MAKER",
        "pendingAbovePrice": "80000.00", "pendingBelowType": "STOP_LOSS",
        "pendingBelowStopPrice": "40000.00", "newOrderRespType": "RESULT"})
    await call("orderList.cancel", None, {**SYM, "orderListId": oco["orderListId"]})
    await call("openOrders.cancelAll", None, SYM)
    await call("account.status", None, {})
    await call("account.commission", None, SYM)
    await call("account.rateLimits.orders", None, {})
    await call("allOrders", None, SYM)
    await call("myTrades", None, SYM)


async def _ws_request(ws: ClientConnection, method: str, params: dict[str, Any] | None,
                      frames: list[dict[str, Any]], req_id: str) -> dict[str, Any]:
    await ws.send(json.dumps({"id": req_id, "method": method, "params": params or {}}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame.get("id") == req_id:
            return frame
        frames.append(frame)


async def _events_until(ws: ClientConnection, frames: list[dict[str, Any]], kinds: set[str],
                        timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not kinds <= {f.get("event", {}).get("e") for f in frames}:
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), end - loop.time())))


async def test_ws_api_answers_and_user_data_events_match(world: World) -> None:
    sim, bot = world.sim, world.bot
    methods = _ws_methods()
    found: dict[str, list[str]] = {}
    events: list[dict[str, Any]] = []
    ws = await connect(sim.ws_api_url, local_addr=("127.0.0.2", 0))
    try:
        def check(method: str, frame: dict[str, Any], name: str | None = None,
                  variant: str | None = None) -> None:
            spec = Spec.of(WS["methods"][method], variant)
            found[f"ws {name or method}"] = spec.compare(frame)

        n = 0
        called: set[str] = set()

        async def req(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
            nonlocal n
            n += 1
            called.add(method)
            return await _ws_request(ws, method, params, events, f"doc-{n}")

        for method in ("ping", "time", "session.status", "exchangeInfo"):
            if method in methods:
                check(method, await req(method))
        params: dict[str, Any] = {"apiKey": bot.api_key, "timestamp": sim.clock.now_ms()}
        params["signature"] = hmac_hex(bot._secret, ws_payload(params))
        check("userDataStream.subscribe.signature",
              await req("userDataStream.subscribe.signature", params))
        again = await req("userDataStream.subscribe.signature", params)  # -2035
        check("error", again, "error [-2035]")
        if "session.subscriptions" in methods:
            check("session.subscriptions", await req("session.subscriptions"))

        async def mirror(method: str, variant: str | None,
                         params: dict[str, Any]) -> dict[str, Any]:
            ep = wsapi.mirrored(method)
            if ep is None:
                # not served: the completeness test names it; later calls get dummy ids
                return {"result": {"orderId": 0, "orderListId": 0}}
            params = dict(params)
            if ep.security is not None:
                params["apiKey"] = bot.api_key
            if ep.security not in (None, "KEY"):
                params["timestamp"] = sim.clock.now_ms()
                params["signature"] = hmac_hex(bot._secret, ws_payload(params))
            frame = await req(method, params)
            assert frame.get("status") == 200, f"ws {method} [{variant}]: {frame}"
            check(method, frame, f"{method} [{variant}]" if variant else None, variant)
            return frame

        await _ws_trading_calls(mirror)  # first: the trades the market data shows
        for method, variant, market in WS_MARKET:
            await mirror(method, variant, market)
        for method in sorted(m for m in methods if m in WS["retired"]):
            frame = await req(method, {"apiKey": bot.api_key})
            check("error", frame, f"error [{method}]")
        await world.order(side="BUY", type="MARKET", quantity="0.001")
        await world.call("POST /sapi/v1/capital/withdraw/apply",
                         {"coin": "USDT", "address": "0xdeadbeef", "amount": "10"})
        wanted = {"executionReport", "outboundAccountPosition", "balanceUpdate"}
        if any(ep.path == "/api/v3/orderList/oco" for ep in ALL_ENDPOINTS):
            await bot.signed("POST", "/api/v3/orderList/oco", _oco_params())
            wanted.add("listStatus")
        await _events_until(ws, events, wanted)
        check("userDataStream.unsubscribe", await req("userDataStream.unsubscribe"))
        await _events_until(ws, events, {"eventStreamTerminated"})
        # an Ed25519 key's session: logon, its status, the logon-based subscription, logout
        ed = ed25519.Ed25519PrivateKey.generate()
        ed_key, _ = sim.control.create_key("main", "doc-ed", permissions=TRADER,
                                           ip_whitelist=["127.0.0.2"],
                                           public_key=ed.public_key().public_bytes(
                                               serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo
                                           ).decode())
        logon = await req("session.logon", sign_ws_params(Ed25519Signer(ed), {
            "apiKey": ed_key, "timestamp": sim.clock.now_ms()}))
        check("session.logon", logon)
        check("session.status", await req("session.status"), "session.status [logged on]")
        check("userDataStream.subscribe", await req("userDataStream.subscribe"))
        check("session.logout", await req("session.logout"))

        def ended() -> int:
            return sum(f.get("event", {}).get("e") == "eventStreamTerminated" for f in events)
        while ended() < 2:  # the logout ends the logon-based subscription
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    finally:
        await ws.close()
    seen: set[str] = set()
    for frame in events:
        kind = frame.get("event", {}).get("e")
        if kind not in EVENTS:
            found.setdefault(f"event {kind}", []).append("<root>: event type not documented")
            continue
        key = f"event {kind}"
        mism = Spec.of(EVENTS[kind]).compare(frame)
        found[key] = sorted(set(found.get(key, [])) | set(mism))
        seen.add(kind)
    assert wanted | {"eventStreamTerminated"} <= seen
    uncalled = sorted((methods & WS_CALLED) - called)
    assert not uncalled, f"WS API methods in WS_CALLED that this test did not call: {uncalled}"
    _check_known(found)


def _check_known(found: dict[str, list[str]]) -> None:
    """A mismatch not in known_mismatches.json fails, and so does a listed one that no longer
    occurs (delete it from the list then); KEYWATCH_DOC_REPORT=1 prints every comparison.

    Known mismatches are matched with array indices dropped (`symbols[].x`), so one entry
    covers every element. Each test checks the listed entries of the calls it compared.
    """
    report = bool(os.environ.get("KEYWATCH_DOC_REPORT"))
    problems: list[str] = []
    for call, mism in sorted(found.items()):
        known = set(KNOWN.get(call, []))
        seen: dict[str, str] = {}
        for m in mism:
            seen.setdefault(_norm(m), m)
        problems += [f"{call}: {m}" for n, m in seen.items() if n not in known]
        problems += [f"{call}: listed in known_mismatches.json but gone (delete it): {n}"
                     for n in sorted(known - set(seen))]
        if report:
            print(f"{call}: {'ok' if not seen else ''}")
            for n, m in seen.items():
                print(f"    {'known' if n in known else 'NEW  '} {m}")
            for n in sorted(known - set(seen)):
                print(f"    GONE  {n}")
    assert not problems, ("simulator answers differ from Binance's documented examples "
                          "(tests/world/sim/documented/*.json):\n" + "\n".join(problems))


def _compared_names() -> set[str]:
    """Every key the comparison tests put in `found` (what known_mismatches.json may list)."""
    names = {f"{c} [{v}]" if v else c for c, e in REST.items()
             for v in (e.get("variants") or [None])}
    for method, entry in WS["methods"].items():
        names |= {f"ws {method} [{v}]" if v else f"ws {method}"
                  for v in (entry.get("variants") or [None])}
    names |= {f"ws error [{m}]" for m in WS["retired"]} | {"ws error [-2035]"}
    names |= {f"event {e}" for e in EVENTS}
    names |= {f"stream {n}" for n in [*STREAM_NAMES, *STREAMS, "/ws/btcusdt@bookTicker"]}
    return names


def test_known_mismatches_name_compared_calls_and_say_why() -> None:
    unknown = sorted(set(KNOWN) - _compared_names())
    assert not unknown, f"known_mismatches.json lists calls no test compares: {unknown}"
    why = _load("known_mismatches.json").get("_why", {})
    unexplained = sorted(set(KNOWN) - set(why))
    assert not unexplained, f"known mismatches without a reason in '_why': {unexplained}"


# -- public market-data streams ------------------------------------------------------------
# every stream name subscribed here -> the documented stream (streams.json) it must match; None:
# a stream the simulator serves that web-socket-streams.md does not document
STREAM_NAMES: dict[str, str | None] = {
    "btcusdt@trade": "trade", "btcusdt@aggTrade": "aggTrade",
    "btcusdt@kline_1m": "kline", "btcusdt@kline_1s": "kline",
    "btcusdt@kline_1h@+08:00": "kline@timezone",
    "btcusdt@miniTicker": "24hrMiniTicker", "btcusdt@ticker": "24hrTicker",
    "btcusdt@ticker_1h": "rollingTicker", "btcusdt@ticker_4h": "rollingTicker",
    "btcusdt@ticker_1d": "rollingTicker", "btcusdt@bookTicker": "bookTicker",
    "btcusdt@avgPrice": "avgPrice", "btcusdt@depth5": "partialDepth",
    "btcusdt@depth10@100ms": "partialDepth", "btcusdt@depth20": "partialDepth",
    "btcusdt@depth": "depthUpdate", "btcusdt@depth@100ms": "depthUpdate",
    "!miniTicker@arr": "24hrMiniTicker@arr", "!ticker_1h@arr": "rollingTicker@arr",
    "!ticker_4h@arr": "rollingTicker@arr", "!ticker_1d@arr": "rollingTicker@arr",
}
# the stream kinds streamnames.StreamSpec serves, per symbol (False) and all-market (True)
SERVED_STREAM_KINDS = {(k, False) for k in ("trade", "aggTrade", "bookTicker", "ticker",
                                            "miniTicker", "avgPrice", "depth", "partial",
                                            "kline", "rolling")} | {
    ("miniTicker", True), ("rolling", True)}


def test_every_served_stream_kind_is_subscribed_here() -> None:
    specs = {name: streamnames.parse(name) for name in STREAM_NAMES}
    unknown = sorted(n for n, spec in specs.items() if spec is None)
    assert not unknown, f"names the simulator does not serve (guessed?): {unknown}"
    kinds = {(spec.kind, spec.symbol is None) for spec in specs.values() if spec is not None}
    assert SERVED_STREAM_KINDS <= kinds, f"kinds not subscribed: {SERVED_STREAM_KINDS - kinds}"
    documented = {v for v in STREAM_NAMES.values() if v is not None}
    assert documented <= set(STREAMS), documented - set(STREAMS)


def _stream_compare(kind: str, data: Any) -> list[str]:
    entry = STREAMS[kind]
    spec = Spec(entry["example"], tuples=set(entry.get("tuples", [])))
    return spec.compare(data, tuple(entry.get("allow_empty", {}).get("paths", [])))


async def _recv_json(ws: ClientConnection, end: float) -> Any:
    loop = asyncio.get_running_loop()
    return json.loads(await asyncio.wait_for(ws.recv(), max(0.01, end - loop.time())))


async def test_public_stream_events_match(world: World) -> None:
    base = world.sim.stream_url.rstrip("/")
    found: dict[str, list[str]] = {}
    loop = asyncio.get_running_loop()
    combined = await connect(f"{base}/stream?streams=" + "/".join(STREAM_NAMES),
                             local_addr=("127.0.0.2", 0))
    raw = await connect(f"{base}/ws/btcusdt@bookTicker", local_addr=("127.0.0.2", 0))
    try:
        await world.order(side="BUY", type="MARKET", quantity="0.001")
        end = loop.time() + 6.0
        while set(STREAM_NAMES) - {k.split(" ", 1)[1] for k in found} and loop.time() < end:
            try:
                frame = await _recv_json(combined, end)
            except TimeoutError:
                break
            name, data = frame.get("stream", ""), frame.get("data")
            kind = STREAM_NAMES.get(name)
            mism = (_stream_compare(kind, data) if kind is not None
                    else ["<root>: stream not documented"])
            found[f"stream {name}"] = sorted(set(found.get(f"stream {name}", [])) | set(mism))
        found["stream /ws/btcusdt@bookTicker"] = _stream_compare(
            "bookTicker", await _recv_json(raw, loop.time() + 5.0))
    finally:
        await combined.close()
        await raw.close()
    missing = sorted(set(STREAM_NAMES) - {k.split(" ", 1)[1] for k in found})
    assert not missing, f"no event within 6 s on streams: {missing}"
    _check_known(found)


async def test_public_stream_control_replies_match(world: World) -> None:
    """/ws with SUBSCRIBE, LIST_SUBSCRIPTIONS, GET_PROPERTY, SET_PROPERTY and UNSUBSCRIBE (the
    docs' own ids), each reply against the documented one; data frames in between skipped."""
    found: dict[str, list[str]] = {}
    ws = await connect(f"{world.sim.stream_url.rstrip('/')}/ws", local_addr=("127.0.0.2", 0))
    loop = asyncio.get_running_loop()
    try:
        for method, params, req_id in (
                ("SUBSCRIBE", ["btcusdt@aggTrade", "btcusdt@depth"], 1),
                ("LIST_SUBSCRIPTIONS", None, 3), ("GET_PROPERTY", ["combined"], 2),
                ("SET_PROPERTY", ["combined", True], 5), ("UNSUBSCRIBE", ["btcusdt@depth"], 312)):
            msg: dict[str, Any] = {"method": method, "id": req_id}
            if params is not None:
                msg["params"] = params
            await ws.send(json.dumps(msg))
            end = loop.time() + 5.0
            while True:
                reply = await _recv_json(ws, end)
                if isinstance(reply, dict) and reply.get("id") == req_id:
                    break
            found[f"stream {method}"] = _stream_compare(method, reply)
            await asyncio.sleep(0.25)  # 5 incoming messages a second at most
    finally:
        await ws.close()
    _check_known(found)
