"""Provenance before prefixes: tapped orders and cancels are their key's, whatever their
clientOrderId; untapped ones are foreign and name a key; live == replay with held reports.

Inputs are built by the production functions: the tap's `build_event` (with Binance's answer)
and the stream parser's `execution_report`, mixed into generated traffic.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.binance.parse import Ctx, execution_report
from monitor.collect.tap import Tap, fingerprint
from monitor.core.clock import SystemClock
from monitor.core.events import Event
from monitor.core.orderpaths import CANCEL, NEW, answer_ids
from monitor.detect.engine import DetectionEngine
from monitor.detect.rules import load_rules
from monitor.features import FEATURES, FeatureContext, events_to_frame, windows
from monitor.world.evaluate.generator import generate
from tests.detect.test_live_replay import to_events

ROOT = Path(__file__).resolve().parents[2]
BOT_IP = "10.0.0.237"  # replaced by bot0's generated address (its declared whitelist)


def tap_record(tap: Tap, ts: int, method: str, path: str, query: str, answer: dict,
               ip: str | None = None) -> Event:
    scope = {"method": method, "path": path, "query_string": query.encode(),
             "headers": [(b"x-mbx-apikey", b"bot0-key")], "client": (ip or BOT_IP, 40000)}
    return tap.build_event(scope, b"", ts, 4.0, 200, {}, json.dumps(answer).encode(), None)


def report(ts: int, oid: int, cid: str, x: str, orig: str | None = None) -> Event:
    ev = {"e": "executionReport", "E": ts, "s": "BTCUSDT", "c": cid, "S": "BUY", "o": "LIMIT",
          "q": "0.00100000", "p": "60000.00", "x": x, "X": x, "i": oid, "T": ts, "l": "0",
          "L": "0", "C": orig or ""}
    return execution_report(ev, Ctx("acct0", ts + 20, "acct0-monitor"))


def scenario(t0: int, prefix: str) -> tuple[list[Event], dict[str, int]]:
    tap = Tap("http://127.0.0.1:9", SystemClock(), lambda evs: 0,
              keys={fingerprint("bot0-key"): ("acct0", "bot0")}, default_account="acct0")
    q = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.001&price=60000"
    evs = []
    # A: ccxt's own id, the stream report 400 ms BEFORE the tap's record (held, then matched)
    evs.append(report(t0, 9001, "x-TKT5PX2Fa1", "NEW"))
    evs.append(tap_record(tap, t0 + 400, "POST", "/api/v3/order", q,
                          {"symbol": "BTCUSDT", "orderId": 9001, "clientOrderId": "x-TKT5PX2Fa1"}))
    # B: the record first, the report after (matched at once)
    evs.append(tap_record(tap, t0 + 1_000, "POST", "/api/v3/order", q,
                          {"symbol": "BTCUSDT", "orderId": 9002, "clientOrderId": "x-TKT5PX2Fb2"}))
    evs.append(report(t0 + 1_030, 9002, "x-TKT5PX2Fb2", "NEW"))
    # C: the leaked key elsewhere, stamping bot0's own prefix: foreign, names bot0
    evs.append(report(t0 + 20_000, 9003, prefix + "stolen", "NEW"))
    # D: bot0 cancels A through the tap; the CANCELED report comes 300 ms before the record
    evs.append(report(t0 + 40_000, 9001, "cancel-own", "CANCELED", orig="x-TKT5PX2Fa1"))
    evs.append(tap_record(tap, t0 + 40_300, "DELETE", "/api/v3/order",
                          "symbol=BTCUSDT&orderId=9001",
                          {"symbol": "BTCUSDT", "origClientOrderId": "x-TKT5PX2Fa1",
                           "orderId": 9001, "clientOrderId": "cancel-own", "status": "CANCELED"}))
    # E: someone else cancels B (no tapped cancel): foreign cancel, names B's key
    evs.append(report(t0 + 70_000, 9002, "web_abc", "CANCELED", orig="x-TKT5PX2Fb2"))
    return evs, {"C": 9003, "E": 9002}


@pytest.fixture(scope="module")
def world() -> tuple[FeatureContext, list[Event], dict[str, int]]:
    global BOT_IP
    syn = generate(keys=2, days=0.08, seed=5, attacks=[])
    ctx = FeatureContext.from_config(syn.config)
    base = to_events(syn.events)
    BOT_IP = next(e.ip for e in base if e.key == "bot0" and e.source.value == "tap")
    ctx = dataclasses.replace(ctx, whitelists={**ctx.whitelists, ("acct0", "bot0"): [
        ipaddress.ip_network(f"{BOT_IP}/32")]})
    prefix = next(p for p, k in ctx.prefixes["acct0"] if k == "bot0")
    mid = base[len(base) // 2].ts
    mine, ids = scenario(mid, prefix)
    events = sorted(base + mine, key=lambda e: e.ts)
    return ctx, events, ids


def test_tapped_orders_are_the_keys_untapped_ones_foreign(world) -> None:  # type: ignore[no-untyped-def]
    ctx, events, ids = world
    found = DetectionEngine(ctx, load_rules(ROOT / "rules")).replay(events_to_frame(events))
    foreign = [(f.rule_id, f.key, int(f.evidence["order_id"])) for f in found
               if f.rule_id.startswith("foreign.")]
    assert foreign == [("foreign.order", "bot0", ids["C"]), ("foreign.cancel", "bot0", ids["E"])]
    c = next(f for f in found if f.rule_id == "foreign.order")
    assert c.evidence["placed_by"] == "bot0" and "(account" not in c.summary


def test_live_equals_replay_with_held_reports(world) -> None:  # type: ignore[no-untyped-def]
    ctx, events, _ = world
    rules = load_rules(ROOT / "rules")
    df = events_to_frame(events)
    expected = DetectionEngine(ctx, rules).replay(df)
    live = DetectionEngine(ctx, rules)
    rng = np.random.default_rng(1)
    got, wins, i = [], [], 0
    while i < len(events):
        j = min(len(events), i + int(rng.integers(1, 40)))
        got += live.process(events[i:j])
        if rng.random() < 0.3:
            got += live.tick(events[j - 1].ts)
            wins.append(live.last_windows)
        i = j
    got += live.tick(events[-1].ts + 120_000)
    wins.append(live.last_windows)
    cols = ["account", "key", "minute", *FEATURES]
    lw = (pd.concat([w for w in wins if len(w)], ignore_index=True)
          .sort_values(["account", "key", "minute"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(lw[cols].astype({"account": str, "key": str}),
                                  windows(df, ctx)[cols].astype({"account": str, "key": str}),
                                  check_dtype=False, check_exact=True)
    assert sorted(f.model_dump_json() for f in got) == sorted(
        f.model_dump_json() for f in expected)
    assert {f.rule_id for f in expected} >= {"foreign.order", "foreign.cancel"}


def test_a_record_from_an_unexpected_address_proves_nothing(world) -> None:  # type: ignore[no-untyped-def]
    ctx, events, _ = world
    tap = Tap("http://127.0.0.1:9", SystemClock(), lambda evs: 0,
              keys={fingerprint("bot0-key"): ("acct0", "bot0")}, default_account="acct0")
    t = events[-1].ts + 1_000
    extra = [tap_record(tap, t, "POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY",
                        {"symbol": "BTCUSDT", "orderId": 9100, "clientOrderId": "x-TKT5PX2Fz"},
                        ip="203.0.113.9"),
             report(t + 30, 9100, "x-TKT5PX2Fz", "NEW")]
    found = DetectionEngine(ctx, load_rules(ROOT / "rules")).replay(
        events_to_frame(events + extra))
    assert 9100 in [int(f.evidence["order_id"]) for f in found if f.rule_id == "foreign.order"]


@pytest.mark.parametrize(("method", "path", "answer", "want"), [
    ("POST", "/api/v3/order", {"symbol": "S", "orderId": 1, "clientOrderId": "a"},
     [(NEW, "S", 1, "a")]),
    ("POST", "/api/v3/order", {"code": -2010, "msg": "insufficient balance"}, []),
    ("POST", "/api/v3/order/test", {}, []),
    ("DELETE", "/api/v3/order", {"symbol": "S", "orderId": 1, "origClientOrderId": "a",
                                 "clientOrderId": "c"}, [(CANCEL, "S", 1, "a")]),
    ("DELETE", "/api/v3/order", {"code": -2011, "msg": "Unknown order sent."}, []),
    ("POST", "/api/v3/order/cancelReplace",
     {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
      "cancelResponse": {"symbol": "S", "orderId": 1, "origClientOrderId": "a"},
      "newOrderResponse": {"symbol": "S", "orderId": 2, "clientOrderId": "b"}},
     [(CANCEL, "S", 1, "a"), (NEW, "S", 2, "b")]),
    ("POST", "/api/v3/order/cancelReplace",  # cancel done, new order refused: under `data`
     {"code": -2021, "msg": "partial", "data": {
         "cancelResult": "SUCCESS", "newOrderResult": "FAILURE",
         "cancelResponse": {"symbol": "S", "orderId": 1, "origClientOrderId": "a"},
         "newOrderResponse": {"code": -2010, "msg": "insufficient balance"}}},
     [(CANCEL, "S", 1, "a")]),
    ("POST", "/api/v3/orderList/oco", {"orders": [
        {"symbol": "S", "orderId": 3, "clientOrderId": "l1"},
        {"symbol": "S", "orderId": 4, "clientOrderId": "l2"}]},
     [(NEW, "S", 3, "l1"), (NEW, "S", 4, "l2")]),
    ("DELETE", "/api/v3/openOrders", [
        {"symbol": "S", "orderId": 5, "origClientOrderId": "o5", "clientOrderId": "x"},
        {"orderListId": 7, "orderReports": [
            {"symbol": "S", "orderId": 6, "origClientOrderId": "o6", "clientOrderId": "y"}]}],
     [(CANCEL, "S", 5, "o5"), (CANCEL, "S", 6, "o6")]),
    ("GET", "/api/v3/order", {"symbol": "S", "orderId": 1}, []),
])
def test_answer_ids(method: str, path: str, answer: object, want: list) -> None:
    assert answer_ids(method, path, {"symbol": "S"}, answer) == want
