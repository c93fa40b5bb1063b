"""Parsers: the same fact from the stream and from REST gets the same id; bad input is counted."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.binance import parse_rest
from monitor.binance.parse import Ctx, order_facts_from_rest, ws_frame
from monitor.core.events import Kind
from monitor.core.keyrestrictions import KeyRestrictions

T = 1_785_000_000_000
CTX = Ctx(account="main", received_ts=T + 9)


def report(x: str, status: str, *, t: int = -1, at: int = T, **kw: object) -> dict:
    ev = {"e": "executionReport", "E": at + 1, "s": "BTCUSDT", "c": "bot7-1", "S": "BUY",
          "o": "LIMIT", "f": "GTC", "q": "0.01000000", "p": "65000.00", "P": "0", "F": "0",
          "g": -1, "C": "", "x": x, "X": status, "r": "NONE", "i": 28, "l": "0", "z": "0",
          "L": "0", "n": "0", "N": None, "T": at, "t": t, "I": 61, "w": True, "m": False,
          "M": False, "O": T, "Z": "0", "Y": "0", "Q": "0", "W": T, "V": "NONE", "zz": "new?"}
    ev.update(kw)
    return ev


def frame(ev: dict) -> str:
    return json.dumps({"subscriptionId": 0, "event": ev})


def test_stream_and_rest_rebuild_collide_on_ids() -> None:
    stream = [
        report("NEW", "NEW"),
        report("TRADE", "PARTIALLY_FILLED", t=9001, at=T + 50, l="0.004", L="65000.00",
               Y="260.0"),
        report("CANCELED", "CANCELED", at=T + 90),
    ]
    ids = [ws_frame(frame(e), CTX).events[0].event_id for e in stream]
    order = {"symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": "bot7-1",
             "price": "65000.00", "origQty": "0.01000000", "executedQty": "0.004",
             "cummulativeQuoteQty": "260", "status": "CANCELED", "timeInForce": "GTC",
             "type": "LIMIT", "side": "BUY", "time": T, "updateTime": T + 90}
    trades = [{"symbol": "BTCUSDT", "id": 9001, "orderId": 28, "price": "65000.00",
               "qty": "0.004", "quoteQty": "260.0", "time": T + 50, "isBuyer": True}]
    rebuilt = order_facts_from_rest(order, trades, CTX, "/api/v3/allOrders")
    assert [e.event_id for e in rebuilt] == ids
    assert [e.kind for e in rebuilt] == [Kind.ORDER, Kind.FILL, Kind.ORDER]
    assert rebuilt[1].order_status == "PARTIALLY_FILLED"
    assert '"via":"rest"' in (rebuilt[0].raw or "")


def test_unknown_fields_are_kept_in_raw() -> None:
    ev = ws_frame(frame(report("NEW", "NEW")), CTX).events[0]
    assert json.loads(ev.raw or "{}")["zz"] == "new?"
    assert ev.notional == 650.0 and ev.client_order_id == "bot7-1"


def test_balances_one_event_per_asset_and_control_frames() -> None:
    pos = {"e": "outboundAccountPosition", "E": T, "u": T - 1,
           "B": [{"a": "USDT", "f": "1.5", "l": "2"}, {"a": "BTC", "f": "0", "l": "0"}]}
    evs = ws_frame(frame(pos), CTX).events
    assert [(e.asset, e.free, e.locked) for e in evs] == [("USDT", 1.5, 2.0), ("BTC", 0, 0)]
    term = ws_frame(frame({"e": "eventStreamTerminated", "E": T}), CTX)
    assert term.control == "terminated" and term.events[0].kind is Kind.STREAM_STATUS
    resp = ws_frame(json.dumps({"id": "kw-1", "status": 200, "result": {}}), CTX)
    assert resp.response is not None and not resp.events


def test_key_config_diff() -> None:
    rec = parse_rest.key_restrictions({"ipRestrict": True, "createTime": T,
                                       "enableReading": True, "enableWithdrawals": False})
    first = parse_rest.key_config_event(CTX, T, rec, None)
    assert first is not None and json.loads(first.raw or "{}") == {
        "ipRestrict": True, "createTime": T, "enableReading": True, "enableWithdrawals": False}
    assert parse_rest.key_config_event(CTX, T + 1, rec, rec) is None
    off = replace(rec, ip_restrict=False)
    drift = parse_rest.key_config_event(CTX, T + 2, off, rec)
    assert drift is not None and KeyRestrictions.from_raw(drift.raw) == off


GOOD = frame(report("NEW", "NEW"))
hostile = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    st.builds(lambda n: GOOD[:n], st.integers(0, len(GOOD) - 1)),  # truncated
    st.builds(lambda d: json.dumps({"subscriptionId": 0, "event": d}),
              st.dictionaries(st.sampled_from(list(report("NEW", "NEW"))),
                              st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                        st.floats(), st.booleans()), max_size=12)),
    st.just("[" * 5000 + "]" * 5000),
    st.just(json.dumps({"event": {"e": "executionReport", "E": 1, "signature": "x"}})),
)


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_hostile_frames_never_raise_and_are_counted(data: str | bytes) -> None:
    out = ws_frame(data, CTX)
    if out.control == "malformed":
        (ev,) = out.events
        assert ev.kind is Kind.STREAM_STATUS and ev.event_id.startswith("stream:malformed:")
    good = ws_frame(GOOD, CTX)  # a good frame after it is still read
    assert good.events[0].kind is Kind.ORDER
