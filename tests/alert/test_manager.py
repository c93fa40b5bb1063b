"""The alert manager's decisions, with a manual clock and a real SQLite store."""

from __future__ import annotations

from monitor.alert.manager import AlertManager
from monitor.core.findings import Severity, Signal
from tests.alert.conftest import alerts_cfg, channel, finding

HOOK = channel("hook", "json://127.0.0.1:9/", ["critical"])
MAIL = channel("mail", "mailto://127.0.0.1:9?from=a@example.com&mode=insecure", ["digest"])


def test_storm_of_identical_findings_yields_one_alert(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK))
    ids: list[str] = []
    for _i in range(100):  # 10,000 findings over 60 s, submitted in detector-sized batches
        mgr.submit([finding(ts=clock.now_ms() + j) for j in range(100)])
        clock.advance(600)
        ids += mgr.flush()
    clock.advance(60_000)
    ids += mgr.flush()
    assert len(ids) == 1
    alerts = store.load_alerts()
    assert len(alerts) == 1
    assert ids[0] in alerts[0].title and ids[0] in alerts[0].body
    # the first group collected every occurrence seen while it waited (10 s of the storm)
    assert alerts[0].payload.items[0].count >= 1600
    assert [d.channel for d in store.deliveries(ids[0])] == ["hook"]
    assert len(store.load_findings()) == 10_000


def test_findings_for_one_account_within_group_wait_share_one_message(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK))
    mgr.submit([finding(ip="127.66.0.9")])
    clock.advance(4_000)
    mgr.submit([finding(ip="127.66.0.10", rule="unknown-ip"),
                finding(rule="oversized-reject", signal=Signal.OVERSIZED_REJECT, ip="x")])
    mgr.submit([finding(account="other")])
    clock.advance(5_000)
    assert mgr.flush() == []  # the group's wait (10 s from its first finding) is not over
    clock.advance(1_000)
    ids = mgr.flush()
    assert len(ids) == 1
    alert = store.load_alert(ids[0])
    assert alert is not None and alert.account == "main"
    assert len(alert.payload.fingerprints) == 3
    assert "127.66.0.9" in alert.body and "127.66.0.10" in alert.body
    clock.advance(4_000)
    other = mgr.flush()
    assert len(other) == 1 and store.load_alert(other[0]).account == "other"


def test_repeat_after_interval_and_resolved_notice(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK, repeat_interval_s=600, cooldown_s=60))
    mgr.submit([finding()])
    clock.advance(10_000)
    (first,) = mgr.flush()
    clock.advance(300_000)
    mgr.submit([finding()])
    clock.advance(10_000)
    assert mgr.flush() == []  # inside the repeat interval: deduped
    clock.advance(300_000)
    mgr.submit([finding()])
    clock.advance(10_000)
    (again,) = mgr.flush()
    repeat = store.load_alert(again)
    assert repeat.kind == "repeat" and first in repeat.body  # names the first alert
    assert "STILL FIRING" in repeat.body
    mgr.submit([finding(state="resolved")])
    clock.advance(10_000)
    (resolved,) = mgr.flush()
    notice = store.load_alert(resolved)
    assert notice.kind == "resolved" and "RESOLVED" in notice.title
    # a resolve for something that never fired is not news
    mgr.submit([finding(ip="127.66.0.77", state="resolved")])
    clock.advance(10_000)
    assert mgr.flush() == []


def test_cooldown_swallows_flapping(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK, repeat_interval_s=0, cooldown_s=300))
    mgr.submit([finding()])
    clock.advance(10_000)
    assert len(mgr.flush()) == 1
    mgr.submit([finding(state="resolved")])
    clock.advance(10_000)
    assert len(mgr.flush()) == 1  # the resolved notice
    clock.advance(10_000)
    mgr.submit([finding()])  # fires again 20 s after the first alert: inside the cooldown
    clock.advance(10_000)
    assert mgr.flush() == []
    clock.advance(300_000)
    mgr.submit([finding()])  # still firing after the cooldown: one reminder
    clock.advance(10_000)
    assert len(mgr.flush()) == 1


def test_silence_suppresses_until_it_expires(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK))
    store.add_silence("unknown-ip", None, "grid-bot", clock.now_ms(), clock.now_ms() + 3_600_000,
                      "maintenance: moving the bot to a new server")
    for _ in range(60):
        mgr.submit([finding(ts=clock.now_ms())])
        clock.advance(60_000)
        assert mgr.flush() == []
    assert mgr.counters["silenced"] == 60
    assert store.load_alerts() == []
    # other rules and keys are not silenced
    mgr.submit([finding(key="other-bot")])
    clock.advance(10_000)
    assert len(mgr.flush()) == 1
    # the silence ended (one hour): the same finding alerts again
    clock.advance(60_000)
    mgr.submit([finding()])
    clock.advance(10_000)
    ids = mgr.flush()
    assert len(ids) == 1 and "grid-bot" in store.load_alert(ids[0]).title


def test_silence_added_while_a_group_waits(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK))
    mgr.submit([finding()])
    sid = store.add_silence(None, "main", None, clock.now_ms(), clock.now_ms() + 60_000, "test")
    clock.advance(10_000)
    assert mgr.flush() == []
    store.expire_silence(sid, clock.now_ms())
    mgr.submit([finding()])
    clock.advance(10_000)
    assert len(mgr.flush()) == 1


def test_pending_group_survives_a_restart(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK))
    mgr.submit([finding()])
    del mgr  # process dies inside group_wait
    clock.advance(10_000)
    again = AlertManager(store, clock, alerts_cfg(HOOK))
    ids = again.flush()
    assert len(ids) == 1
    # and the restarted manager still dedupes against what was sent
    restarted = AlertManager(store, clock, alerts_cfg(HOOK))
    restarted.submit([finding()])
    clock.advance(10_000)
    assert restarted.flush() == []


def test_daily_digest_collects_lower_severities(store, clock):
    cfg = alerts_cfg(HOOK, MAIL, digest_hour_utc=8)
    mgr = AlertManager(store, clock, cfg)
    mgr.flush()  # first flush settles the digest cursor for today
    for i in range(5):
        mgr.submit([finding(rule="weight-high", sev=Severity.WARNING, ts=clock.now_ms() + i,
                            signal=Signal.CALL_RATE)])
    mgr.submit([finding(rule="posture", sev=Severity.INFO, signal=Signal.POSTURE, key="tax")])
    clock.advance(10_000)
    assert mgr.flush() == []  # nothing pages for warning/info
    clock.advance(16 * 3_600_000)  # past 08:00 UTC the next day
    ids = mgr.flush()
    assert len(ids) == 1
    digest = store.load_alert(ids[0])
    assert digest.kind == "digest" and "x5" in digest.body and "posture" in digest.body
    assert [d.channel for d in store.deliveries(ids[0])] == ["mail"]
    assert mgr.flush() == []  # once a day


def test_routing_follows_severity_tags(store, clock):
    cfg = alerts_cfg(HOOK, MAIL, channel("all", "json://127.0.0.1:8/"))
    mgr = AlertManager(store, clock, cfg)
    mgr.submit([finding(sev=Severity.HIGH)])
    clock.advance(10_000)
    (aid,) = mgr.flush()
    assert sorted(d.channel for d in store.deliveries(aid)) == ["all", "hook"]


def test_final_flush_writes_waiting_groups(store, clock):
    mgr = AlertManager(store, clock, alerts_cfg(HOOK))
    mgr.submit([finding()])
    clock.advance(1_000)
    assert mgr.flush() == []
    assert len(mgr.flush(final=True)) == 1  # shutdown: do not hold it until a restart
