"""Issue 14 end to end: a false foreign-order alert must not blind the rule.

The user-data stream's executionReport frames go through the production parser, the detection
engine with the shipped rules, the alert manager and the notifier, over real Apprise `json://`
to a loopback HTTP receiver. Ten simulated minutes after a false alert (the owner's own manual
order) a pump starts on the same account: inside the rule's 30-minute cooldown, the manager's
cooldown and its repeat interval. The pump must arrive.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.alert.manager import AlertManager
from monitor.alert.notify import Notifier
from monitor.binance.parse import Ctx, user_event
from monitor.core.events import Event
from monitor.detect.engine import DetectionEngine
from tests.alert.conftest import alerts_cfg, channel
from tests.alert.receivers import JsonSink
from tests.detect.helpers import make_config

RULES = Path(__file__).resolve().parents[2] / "rules"
MIN = 60_000


def _report(order_id: int, cid: str, ts: int, symbol: str = "BTCUSDT", qty: str = "0.01",
            price: str = "20000") -> list[Event]:
    """One NEW executionReport, parsed the way the stream collector parses it."""
    ev = {"e": "executionReport", "E": ts, "s": symbol, "c": cid, "S": "BUY", "o": "LIMIT",
          "f": "GTC", "q": qty, "p": price, "x": "NEW", "X": "NEW", "r": "NONE", "i": order_id,
          "l": "0", "z": "0", "L": "0", "T": ts, "t": -1, "C": "", "Q": "0"}
    events, _ = user_event(ev, Ctx(account="main", received_ts=ts))
    return events


@pytest.fixture()
async def sink():
    s = await JsonSink().start()
    yield s
    await s.stop()


async def test_a_pump_ten_minutes_after_a_false_alert_is_delivered(store, clock, sink):
    engine = DetectionEngine.from_config(make_config(), rules_dir=RULES)
    cfg = alerts_cfg(channel("hook", sink.url, ["critical"]))  # repeat 1 h, cooldown 5 min
    mgr = AlertManager(store, clock, cfg)
    sender = Notifier(store, clock, cfg)

    def step(events: list[Event]) -> list[str]:
        # as the service's detector loop: the batch, then a clock tick a few seconds on (it
        # also decides the order reports the engine holds back to learn who placed them)
        findings = engine.process(events)
        clock.advance(10_000)
        findings += engine.tick(clock.now_ms())
        mgr.submit(findings)
        clock.advance(10_000)  # group_wait
        return mgr.flush()

    # the owner places an order by hand: no bot prefix, a (false) foreign-order alert
    (false_alert,) = step(_report(1001, "web_manual_1", clock.now_ms()))
    assert await sender.send_due() == 1
    clock.advance(10 * MIN)
    # ten minutes later: a pump, five market-moving buys of a thin coin within seconds
    t = clock.now_ms()
    pump = [e for i in range(5)
            for e in _report(2001 + i, f"x-pump{i}", t + i * 500, "PUMPUSDT", "90000", "0.01")]
    (pump_alert,) = step(pump)
    assert pump_alert != false_alert
    assert await sender.send_due() == 1

    first, second = sink.received
    assert false_alert in first["title"] and pump_alert in second["title"]
    body = second["message"]
    assert "NEW INCIDENT" in body and f"earlier ones in {false_alert}" in body
    assert "order id: 2005" in body  # the newest evidence: the pump's last order
    assert "PUMPUSDT" in body and "incidents so far: 6" in body and "occurrences: 5" in body
    assert "Silence: keywatch silence add --rule foreign.order --account main --key " in body
    assert all(d.state == "sent" for d in store.deliveries(pump_alert))
    # and the false alert's own order, reported again (e.g. a REST backfill), stays quiet
    clock.advance(MIN)
    assert step(_report(1001, "web_manual_1", clock.now_ms())) == []
