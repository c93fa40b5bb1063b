"""Issue 14: a new incident is never hidden by the cooldown or the repeat interval.

Table-driven: each case is a timeline of findings, each step flushed after group_wait, and the
alert kinds it must produce ("firing" = first alert, "update" = a new incident folded into the
open alert and delivered, "repeat" = a reminder of the same incident, "resolved").
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry

from monitor.alert.manager import AlertManager
from monitor.alert.redact import Redactor
from monitor.alert.render import AlertItem, fingerprint, render_alert, silence_command
from monitor.core.findings import Finding, Severity, Signal, incident_id
from monitor.service.metrics import Metrics
from monitor.store import ACCOUNT_WIDE, Silence
from tests.alert.conftest import T0, alerts_cfg, channel, finding, foreign_order

HOOK = channel("hook", "json://127.0.0.1:9/", ["critical"])
MIN = 60_000


def cond(state: str = "firing") -> Finding:
    """A condition (a rate over a window): no evidence names one thing, so no incident id."""
    return finding(rule="call_rate.stream_orders", sev=Severity.HIGH, signal=Signal.CALL_RATE,
                   key=None, group={}, state=state,
                   evidence={"orders": 40.0, "baseline": 2.0, "window_start_ms": T0})


def o(n: int) -> Finding:
    return foreign_order(n, cid=f"web_{n}")


def res(n: int) -> Finding:
    return foreign_order(n, cid=f"web_{n}", state="resolved")


# (minutes after the previous step, findings submitted) -> alert kinds, in order
CASES = {
    "new order inside the repeat interval is delivered": (
        [(0, [o(1)]), (10, [o(2)])], ["firing", "update"]),
    "new order inside the cooldown is delivered": (
        [(0, [o(1)]), (2, [o(2)])], ["firing", "update"]),
    "the same order again is held back": (
        [(0, [o(1)]), (10, [o(1)]), (20, [o(1)])], ["firing"]),
    "the same order after the repeat interval is a reminder": (
        [(0, [o(1)]), (61, [o(1)])], ["firing", "repeat"]),
    "a new order after the repeat interval is news, not a reminder": (
        [(0, [o(1)]), (61, [o(2)])], ["firing", "update"]),
    "resolved, then a new order inside the cooldown is delivered": (
        [(0, [o(1)]), (1, [res(1)]), (1, [o(2)])], ["firing", "resolved", "update"]),
    "resolved, then the same order inside the cooldown is flapping (quiet)": (
        [(0, [o(1)]), (1, [res(1)]), (1, [o(1)])], ["firing", "resolved"]),
    "a new order beats a resolved notice still waiting": (
        [(0, [o(1)]), (1, [res(1), o(2)])], ["firing", "update"]),
    "a new order turns a waiting reminder into an update": (
        [(0, [o(1)]), (61, [o(1), o(2)])], ["firing", "update"]),
    "a new order while the first alert waits joins it": (
        [(0, [o(1), o(2)])], ["firing"]),
    "a condition that keeps firing is one incident": (
        [(0, [cond()]), (10, [cond()]), (30, [cond()])], ["firing"]),
    "a condition still firing after the repeat interval is a reminder": (
        [(0, [cond()]), (61, [cond()])], ["firing", "repeat"]),
}


def _run(mgr: AlertManager, store, clock, steps) -> list[str]:
    kinds: list[str] = []
    for minutes, findings in steps:
        clock.advance(minutes * MIN)
        now = clock.now_ms()
        mgr.submit([f.model_copy(update={"ts": now}) for f in findings])
        clock.advance(10_000)
        kinds += [store.load_alert(a).kind for a in mgr.flush()]
    return kinds


@pytest.mark.parametrize(("steps", "kinds"), CASES.values(), ids=CASES.keys())
def test_timeline(store, clock, steps, kinds):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK, repeat_interval_s=3600, cooldown_s=300))
    assert _run(mgr, store, clock, steps) == kinds


def test_update_carries_count_newest_evidence_and_the_open_alert(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK))
    (first,) = [a for a in _run_ids(mgr, clock, [o(1)])]
    clock.advance(10 * MIN)
    (update,) = _run_ids(mgr, clock, [o(2), o(3), o(4), o(3)])
    alert = store.load_alert(update)
    (item,) = alert.payload.items
    assert (alert.kind, item.kind) == ("update", "update")
    assert item.incident == "order_id=4"  # the newest incident's evidence
    assert item.incidents == 4 and item.count == 4
    assert alert.fingerprint == store.load_alert(first).fingerprint  # folded, same alert
    body = alert.body
    assert "NEW INCIDENT" in body and f"earlier ones in {first}" in body
    assert "order id: 4" in body and "incidents so far: 4" in body
    assert [d.channel for d in store.deliveries(update)] == ["hook"]  # delivered, not dropped


def test_remembered_incidents_survive_a_restart(store, clock):
    _run_ids(AlertManager(store, clock, alerts_cfg(HOOK)), clock, [o(1)])
    again = AlertManager(store, clock, alerts_cfg(HOOK))
    clock.advance(5 * MIN)
    assert _run_ids(again, clock, [o(1)]) == []  # the same order: held back
    assert len(_run_ids(again, clock, [o(2)])) == 1  # a new one: delivered


def _run_ids(mgr: AlertManager, clock, findings: list[Finding]) -> list[str]:
    mgr.submit([f.model_copy(update={"ts": clock.now_ms()}) for f in findings])
    clock.advance(10_000)
    return mgr.flush()


# -- what names an incident ----------------------------------------------------------------
@pytest.mark.parametrize(("signal", "evidence", "expected"), [
    (Signal.FOREIGN_ORDER, {"order_id": 7, "client_order_id": "web_7"}, "order_id=7"),
    (Signal.FOREIGN_ORDER, {"order_id": 7.0}, "order_id=7"),  # the live path's float
    (Signal.FOREIGN_ORDER, {"client_order_id": "web_7"}, "client_order_id=web_7"),
    (Signal.FOREIGN_ORDER, {"unexplained_orders": 12.0}, None),  # the counter rule: condition
    (Signal.OVERSIZED_REJECT, {"client_order_id": "x", "ip": "1.2.3.4"}, "client_order_id=x"),
    (Signal.WITHDRAWAL, {"event_id": "rest:w1", "asset": "BTC"}, "event_id=rest:w1"),
    (Signal.UNKNOWN_IP, {"ip": "1.2.3.4", "requests": 3}, "ip=1.2.3.4"),
    (Signal.CALL_RATE, {"ip": "1.2.3.4", "requests": 300}, None),
    (Signal.POSTURE, {}, None),
])
def test_incident_id(signal, evidence, expected):
    assert incident_id(signal, evidence) == expected


# -- silences ------------------------------------------------------------------------------
def _silence(rule=None, account=None, key=None, ip=None, expires=T0 + 3_600_000) -> Silence:
    return Silence(1, rule, account, key, T0, expires, "test", ip)


WIDE = foreign_order(1)  # account-wide: key None
KEYED = finding(key="grid-bot", ip="10.0.0.1")  # unknown-ip, grouped by ip
EV_IP = finding(key="grid-bot", group={}, evidence={"ip": "10.0.0.2"})  # ip only in evidence


@pytest.mark.parametrize(("silence", "f", "matches"), [
    (_silence(rule="foreign.order", key=ACCOUNT_WIDE), WIDE, True),
    (_silence(rule="foreign.order", key=ACCOUNT_WIDE), foreign_order(1, key="grid-bot"), False),
    (_silence(rule="foreign.order"), WIDE, True),  # no key given: any key, including none
    (_silence(rule="foreign.order", key="grid-bot"), WIDE, False),
    (_silence(rule="foreign.order", key="-"), WIDE, False),  # a literal label, not "no key"
    (_silence(account="main", key=ACCOUNT_WIDE), WIDE, True),
    (_silence(account="other"), WIDE, False),
    (_silence(ip="10.0.0.1"), KEYED, True),
    (_silence(ip="10.0.0.9"), KEYED, False),
    (_silence(ip="10.0.0.2"), EV_IP, True),  # the caller IP from the evidence
    (_silence(ip="10.0.0.1"), WIDE, False),  # no caller address: an IP silence cannot match
    (_silence(key="grid-bot", ip="10.0.0.1"), KEYED, True),
    (_silence(rule="foreign.order", expires=T0), WIDE, False),  # expired
])
def test_silence_matches(silence, f, matches):
    assert silence.matches_finding(f, T0) is matches


@pytest.mark.parametrize(("f", "command"), [
    (WIDE, "keywatch silence add --rule foreign.order --account main --key - --for 2h "
           "--reason '...'"),
    (KEYED, "keywatch silence add --rule unknown-ip --account main --key grid-bot "
            "--ip 10.0.0.1 --for 2h --reason '...'"),
    (finding(key="my bot", account="a'b", group={}),
     "keywatch silence add --rule unknown-ip --account 'a'\"'\"'b' --key 'my bot' --for 2h "
     "--reason '...'"),
])
def test_silence_command(f, command):
    assert silence_command(f) == command


def test_every_item_of_a_grouped_alert_prints_its_silence():
    items = [AlertItem(fingerprint(f), "new", f, 1, T0, T0) for f in (WIDE, KEYED, KEYED)]
    text = render_alert("kw-x", "main", items, Redactor()).text
    lines = [x for x in text.splitlines() if x.startswith("Silence: ")]
    assert lines == [f"Silence: {silence_command(KEYED)}", f"Silence: {silence_command(WIDE)}"]


def test_a_silenced_finding_is_logged_and_counted(store, clock, caplog):
    metrics = Metrics(CollectorRegistry())
    mgr = AlertManager(store, clock, alerts_cfg(HOOK), on_silenced=metrics.finding_silenced)
    sid = store.add_silence("foreign.order", "main", ACCOUNT_WIDE, clock.now_ms(),
                            clock.now_ms() + 3_600_000, "my manual orders today")
    with caplog.at_level(logging.INFO, logger="monitor.alert.manager"):
        assert _run_ids(mgr, clock, [o(1), o(2)]) == []
    value = metrics.registry.get_sample_value("keywatch_findings_silenced_total",
                                              {"rule": "foreign.order"})
    assert value == 2 and mgr.counters["silenced"] == 2
    lines = [r.getMessage() for r in caplog.records if "silenced" in r.getMessage()]
    assert len(lines) == 2
    assert f"by silence {sid}" in lines[0] and "my manual orders today" in lines[0]
    assert "foreign.order, main/-" in lines[0]
    # silenced while its group waited: logged and counted the same way
    mgr.submit([finding(ts=clock.now_ms())])
    store.add_silence("unknown-ip", None, None, clock.now_ms(), clock.now_ms() + 60_000, "x")
    clock.advance(10_000)
    assert mgr.flush() == []
    assert metrics.registry.get_sample_value("keywatch_findings_silenced_total",
                                             {"rule": "unknown-ip"}) == 1
