"""End to end through real Apprise: json:// to a loopback HTTP sink, mailto:// to aiosmtpd."""

from __future__ import annotations

import logging
import random
import sqlite3
import textwrap

import pytest
from pydantic import SecretStr

from monitor.alert.manager import AlertManager
from monitor.alert.notify import Backoff, Notifier
from monitor.alert.redact import config_secrets
from monitor.config import ChannelConfig, load_config
from monitor.core.findings import Severity, Signal
from tests.alert.conftest import MONITOR_ACCOUNT_TOML, alerts_cfg, channel, finding
from tests.alert.receivers import JsonSink, SmtpSink, mail_html, mail_text


@pytest.fixture()
async def sink():
    s = await JsonSink().start()
    yield s
    await s.stop()


@pytest.fixture()
def smtp():
    s = SmtpSink().start()
    yield s
    s.stop()


def _fire(mgr, clock, **kw) -> str:
    mgr.submit([finding(**kw)])
    clock.advance(10_000)
    (alert_id,) = mgr.flush()
    return alert_id


async def test_json_and_mail_receive_title_body_severity(store, clock, sink, smtp):
    cfg = alerts_cfg(channel("hook", sink.url, ["critical"]), channel("mail", smtp.url))
    mgr = AlertManager(store, clock, cfg)
    alert_id = _fire(mgr, clock, evidence={
        "ip": "127.66.0.9", "notional": 25000.0, "free_balance": 1520.5, "requests": 42,
        "baseline_requests": 3.5,
    }, signal=Signal.OVERSIZED_REJECT)
    alert = store.load_alert(alert_id)
    sender = Notifier(store, clock, cfg)
    assert await sender.send_due() == 2

    (got,) = sink.received
    assert got["title"] == alert.title
    assert got["title"].startswith("[CRITICAL] main/grid-bot:") and alert_id in got["title"]
    assert got["type"] == "failure"  # Apprise's notify type carries the severity
    body = got["message"]
    assert body == alert.body  # JSON hooks prefer plain text
    for needle in ("Severity: CRITICAL", "Account: main", "Key: grid-bot", "127.66.0.9",
                   "notional: 25,000", "free balance: 1,520.50", "delete key 'grid-bot'",
                   "support ticket", f"keywatch notebook {alert_id}"):
        assert needle in body, needle

    (mail,) = smtp.messages
    assert mail["Subject"] == alert.title
    assert mail["To"] == "oncall@example.com"
    text, html = mail_text(mail), mail_html(mail)
    assert "CRITICAL" in text and f"keywatch notebook {alert_id}" in text
    assert "<strong>Severity:</strong> CRITICAL" in html  # Markdown rendered as HTML
    assert all(d.state == "sent" and d.attempts == 1 for d in store.deliveries(alert_id))
    assert await sender.send_due() == 0  # nothing sent twice


async def test_outage_then_recovery_and_healthy_channel_not_blocked(store, clock, smtp):
    down = await JsonSink(failing=True).start()
    try:
        cfg = alerts_cfg(channel("down", down.url), channel("mail", smtp.url))
        mgr = AlertManager(store, clock, cfg)
        ids = [_fire(mgr, clock, ip=f"127.66.0.{i}") for i in range(3)]
        sender = Notifier(store, clock, cfg, backoff=Backoff(base_s=2, cap_s=120),
                          rng=random.Random(7))
        await sender.send_due()
        assert len(smtp.messages) == 3  # the healthy channel got everything on the first pass
        for _ in range(120):  # the hook answers 500 for an hour
            clock.advance(30_000)
            await sender.send_due()
        assert down.received == [] and down.requests > 20
        assert all(d.state == "pending" for i in ids for d in store.deliveries(i)
                   if d.channel == "down")
        down.failing = False
        for _ in range(10):  # recovered: within the capped backoff everything arrives
            clock.advance(30_000)
            await sender.send_due()
        assert sorted(r["title"] for r in down.received) == sorted(
            store.load_alert(i).title for i in ids
        )
        for i in ids:
            states = {d.channel: d for d in store.deliveries(i)}
            assert states["down"].state == "sent" and states["down"].attempts > 5
            assert states["mail"].attempts == 1
        assert len(smtp.messages) == 3
    finally:
        await down.stop()


async def test_backoff_is_jittered_and_capped():
    b = Backoff(base_s=5, cap_s=60)
    rng = random.Random(1)
    delays = [b.delay(n, rng) for n in range(1, 12)]
    assert all(0 < d <= 60 for d in delays)
    assert delays[0] <= 5 and max(delays) > 30
    assert len({round(d, 6) for d in delays[6:]}) > 1  # capped, yet not in lock step


async def test_no_secret_reaches_messages_logs_or_store(tmp_path, clock, sink, caplog):
    caplog.set_level(logging.DEBUG)
    key, secret, token = ("k" + "ey" * 32)[:64], "SeCr" * 16, "tok" + "en" * 10
    env = {"KW_KEY": key, "KW_SECRET": secret, "KW_HOOK": f"json://bot:{token}@"
           f"127.0.0.1:{sink.port}/"}
    (tmp_path / "keywatch.toml").write_text(textwrap.dedent(f"""
        store_path = "{tmp_path / 'kw.db'}"
        [alerts]
        group_wait_s = 10
        [[alerts.channels]]
        name = "hook"
        url_env = "KW_HOOK"
    """) + MONITOR_ACCOUNT_TOML)
    cfg = load_config(tmp_path / "keywatch.toml", env=env)
    from monitor.store import open_store

    store = open_store(cfg.store_path)
    secrets = config_secrets(cfg)
    mgr = AlertManager(store, clock, cfg.alerts, secrets=secrets)
    sender = Notifier(store, clock, cfg.alerts, secrets=secrets)
    # an upstream mistake: the key, the secret, a signature and the hook token in a finding
    leaky = finding(key="monitor", sev=Severity.HIGH, evidence={
        "ip": "127.66.0.9", "api_key": key, "raw": f"X-MBX-APIKEY: {key}", "signature": "ab" * 32,
        "note": f"secret={secret}", "hook": env["KW_HOOK"], "token": token,
    })
    mgr.submit([leaky.model_copy(update={"summary": f"key {key} used"})])
    clock.advance(10_000)
    (aid,) = mgr.flush()
    assert await sender.send_due() == 1
    sink.fail_first = sink.requests + 1  # one failure, so error paths log too
    mgr.submit([finding(key="monitor", ip="127.66.0.10", sev=Severity.CRITICAL)])
    clock.advance(10_000)
    mgr.flush()
    await sender.send_due()
    clock.advance(600_000)
    await sender.send_due()
    assert len(sink.received) == 2
    store.close()

    dump = "\n".join(sqlite3.connect(cfg.store_path).iterdump())
    sent = "\n".join(f"{r['title']}\n{r['message']}" for r in sink.received)
    logs = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert "127.66.0.9" in sent and "[redacted]" in sent and aid in dump  # the checks can see
    for name, where in (("message", sent), ("log", logs), ("store", dump)):
        for value in (key, secret, token, "ab" * 32):
            assert value not in where, f"a secret leaked into a {name}"


async def test_apprise_config_file_channels_route_by_their_tags(tmp_path, store, clock, sink,
                                                               smtp):
    conf = tmp_path / "apprise.yml"
    conf.write_text(textwrap.dedent(f"""
        version: 1
        urls:
          - "{sink.url}":
              - tag: critical
          - "{smtp.url}":
              - tag: digest
    """))
    cfg = alerts_cfg(apprise_config=str(conf))
    mgr = AlertManager(store, clock, cfg)
    assert [c.name for c in mgr.channels] == ["apprise.yml#0", "apprise.yml#1"]
    alert_id = _fire(mgr, clock)
    assert [d.channel for d in store.deliveries(alert_id)] == ["apprise.yml#0"]
    assert await Notifier(store, clock, cfg).send_due() == 1
    assert alert_id in sink.received[0]["title"] and smtp.messages == []


async def test_run_loops_until_stopped_then_makes_a_final_pass(store, sink):
    import asyncio

    from monitor.core.clock import SystemClock

    clock = SystemClock()
    cfg = alerts_cfg(channel("hook", sink.url), group_wait_s=0)
    mgr = AlertManager(store, clock, cfg)
    sender = Notifier(store, clock, cfg, poll_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    mgr.submit([finding(ts=clock.now_ms())])
    (first,) = mgr.flush()
    await asyncio.wait_for(sink.got_one.wait(), timeout=10)
    mgr.submit([finding(ip="127.66.0.42", ts=clock.now_ms())])
    (last,) = mgr.flush()
    stop.set()  # the alert queued just before shutdown still goes out
    await asyncio.wait_for(task, timeout=10)
    titles = [r["title"] for r in sink.received]
    assert any(first in t for t in titles) and any(last in t for t in titles)
    assert all(d.state == "sent" for d in store.deliveries())


async def test_channels_are_checked_once_before_the_first_alert(store, clock, sink, caplog):
    """A URL Apprise refuses is named at start (its token is not); the good channel passes."""
    token = "FAKE-" + "never-a-real-bot-token"  # no "digits:" prefix: Apprise refuses it
    bad = ChannelConfig(name="bad", url_env="KW_BAD_URL").model_copy(
        update={"resolved_url": SecretStr(f"tgram://{token}/")})
    cfg = alerts_cfg(channel("hook", sink.url), bad)
    sender = Notifier(store, clock, cfg)
    with caplog.at_level(logging.ERROR, logger="monitor.alert.notify"):
        problems = sender.check_channels()
    assert len(problems) == 1 and problems[0].startswith("alert channel bad:")
    assert "does not accept" in problems[0]
    assert token not in caplog.text and "alert channel bad" in caplog.text
    assert Notifier(store, clock, alerts_cfg(channel("hook", sink.url))).check_channels() == []
