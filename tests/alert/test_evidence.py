"""The alert manager's first stage: what the stored events add to a finding.

Findings come from the real engine with the shipped rules over events stored in a real
SQLite store; stream reports are parsed by the production parser.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alert.evidence import with_store_evidence
from monitor.alert.redact import Redactor
from monitor.alert.render import AlertItem, KeyContext, fingerprint, render_alert, title_for
from monitor.binance.parse import Ctx, user_event
from monitor.core.events import Event
from monitor.core.findings import Finding, incident_id
from monitor.detect.engine import DetectionEngine
from monitor.store import SQLiteStore
from tests.detect.helpers import MIN, T0, ev, make_config

RULES = Path(__file__).resolve().parents[2] / "rules"
HOME, MOVED = "10.0.0.5", "10.0.0.9"


@pytest.fixture()
def store(tmp_path):
    s = SQLiteStore(tmp_path / "kw.db")
    yield s
    s.close()


def _detect(store: SQLiteStore, events: list[Event], until: int) -> list[Finding]:
    """As the service: events stored first, then detection; windows closed at `until`."""
    store.insert_events(events)
    engine = DetectionEngine.from_config(make_config(whitelist=[HOME]), rules_dir=RULES)
    return with_store_evidence(store, engine.process(events) + engine.tick(until))


def _report(oid: int, cid: str, ts: int, x: str = "NEW") -> list[Event]:
    frame = {"e": "executionReport", "E": ts, "s": "BTCUSDT", "c": cid, "S": "BUY",
             "o": "LIMIT", "f": "GTC", "q": "0.01", "p": "20000", "x": x, "X": x, "r": "NONE",
             "i": oid, "l": "0", "z": "0", "L": "0", "T": ts, "t": -1,
             "C": cid if x == "CANCELED" else "", "Q": "0"}
    return user_event(frame, Ctx(account="main", received_ts=ts))[0]


def _placed(oid: int, cid: str, ts: int, ip: str) -> Event:
    """The tap's record of a placement the upstream accepted (order ids from its answer)."""
    return ev(ts=ts, ip=ip, method="POST", endpoint="/api/v3/order", status=200,
              symbol="BTCUSDT", side="BUY", qty=0.01, price=20000.0, order_id=oid,
              client_order_id=cid)


def test_a_refusal_burst_carries_its_codes_and_is_titled_by_them(store):
    t = T0 + 5 * MIN
    refused = ([ev(ts=t + i, status=401, code=-2015) for i in range(3)]
               + [ev(ts=t + 10 + i, status=400, code=-1022) for i in range(2)]
               + [ev(ts=t + 20 + i, status=400, code=-1021) for i in range(2)]  # clock, not auth
               + [ev(ts=t + 30, key="mon", status=400, code=-1022)])  # another key
    (f,) = [f for f in _detect(store, refused, t + 2 * MIN)
            if f.rule_id == "unknown_ip.auth_burst"]
    assert f.evidence["fail_auth"] == 5
    assert f.evidence["codes"] == {"-2015": 3, "-1022": 2}  # most frequent first
    title = title_for(f)
    assert title.startswith("Calls refused (-2015, -1022)") and "secret change" in title
    body = render_alert("kw-1", "main", [AlertItem(fingerprint(f), "new", f, 1, t, t)],
                        Redactor()).text
    assert "answers: -2015 invalid key/IP/permission x3, -1022 bad signature x2" in body


def test_only_minus_1022_is_a_bad_signature_title(store):
    t = T0 + 5 * MIN
    (f,) = [f for f in _detect(store, [ev(ts=t + i, status=400, code=-1022) for i in range(5)],
                               t + 2 * MIN) if f.rule_id == "unknown_ip.auth_burst"]
    assert f.evidence["codes"] == {"-1022": 5}
    assert title_for(f).startswith("Calls with a bad signature (-1022)")


def test_orders_a_moved_bot_placed_fold_by_its_address(store):
    t = T0 + 5 * MIN
    home = [_placed(1, "x-a1", t, HOME), *_report(1, "x-a1", t + 5)]
    moved = [e for i in range(3) for e in (_placed(10 + i, f"x-b{i}", t + MIN + i * 1000, MOVED),
                                           *_report(10 + i, f"x-b{i}", t + MIN + i * 1000 + 5))]
    pump = _report(99, "web_pump", t + MIN + 500)  # straight at Binance: no record
    found = _detect(store, home + moved + pump, t + 3 * MIN)
    foreign = {int(f.evidence["order_id"]): f for f in found if f.rule_id == "foreign.order"}
    assert sorted(foreign) == [10, 11, 12, 99]  # the home bot's own order is explained
    assert {foreign[o].evidence.get("ip") for o in (10, 11, 12)} == {MOVED}
    assert {incident_id(f.signal, f.evidence) for f in foreign.values()} == {
        f"ip={MOVED}", "order_id=99"}
    assert "ip" not in foreign[99].evidence
    assert f"from {MOVED}, an address it is not expected at" in title_for(foreign[10])
    # shown beside what the key declares and where it was seen, as a new caller is
    ctx = {("main", "grid"): KeyContext((HOME,), (HOME, MOVED))}
    moved_text, pump_text = (render_alert("kw-2", "main", [AlertItem(fingerprint(f), "new", f,
                                                                      1, t, t)],
                                          Redactor(), ctx).text
                             for f in (foreign[12], foreign[99]))
    assert f"declared whitelist: {HOME}\n" in moved_text
    assert f"addresses seen before: {HOME}\n" in moved_text
    assert "declared whitelist" not in pump_text  # no address to compare


def test_a_cancel_is_not_given_the_address_that_placed_the_order(store):
    t = T0 + 5 * MIN
    events = [_placed(7, "x-c7", t, HOME), *_report(7, "x-c7", t + 5),
              *_report(7, "x-c7", t + MIN, x="CANCELED")]  # cancelled by no registered bot
    (f,) = [f for f in _detect(store, events, t + 3 * MIN) if f.rule_id == "foreign.cancel"]
    assert "ip" not in f.evidence  # the placement's record says nothing about the cancel
    assert incident_id(f.signal, f.evidence) == "order_id=7"


def test_a_new_caller_refused_by_binance_keeps_its_own_title(store):
    t = T0 + 5 * MIN
    calls = [ev(ts=t, ip=HOME), ev(ts=t + 1, ip=MOVED, status=401, code=-2015)]
    (f,) = [f for f in _detect(store, calls, t + 2 * MIN)
            if f.rule_id == "unknown_ip.new_caller"]
    assert f.evidence["code"] == -2015  # the call's own answer, not a count of refusals
    assert title_for(f) == "Key called from an unfamiliar IP address"


def test_codes_read_once_per_batch_stay_with_their_own_key_and_window(store):
    """A close brings many findings at once; the records are read once for the batch, and each
    finding still gets only its own key's codes in its own window."""
    t = T0 + 5 * MIN
    events = ([ev(ts=t + i, status=401, code=-2015) for i in range(5)]  # grid, minute 5
              + [ev(ts=t + 10 + i, key="mon", status=401, code=-2015) for i in range(2)]
              + [ev(ts=t + 20, key=None, status=401, code=-2014)]  # no key: matches no key
              + [ev(ts=t + MIN + i, key="mon", status=400, code=-1022) for i in range(6)])
    found = sorted((f for f in _detect(store, events, t + 3 * MIN)
                    if f.rule_id == "unknown_ip.auth_burst"), key=lambda f: f.key or "")
    assert [(f.key, f.evidence["codes"]) for f in found] == [  # not mon's minute-5 refusals
        ("grid", {"-2015": 5}), ("mon", {"-1022": 6})]
