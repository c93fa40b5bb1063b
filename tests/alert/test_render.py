"""Message content and redaction, as plain functions."""

from __future__ import annotations

from monitor.alert.redact import REDACTED, Redactor, url_secrets
from monitor.alert.render import AlertItem, fingerprint, render_alert, render_digest
from monitor.findings import Severity, Signal
from tests.alert.conftest import T0, finding
from tests.factories import fake_secret


def _item(f, kind="new", count=3):
    return AlertItem(fingerprint=fingerprint(f), kind=kind, finding=f, count=count,
                     first_seen=T0, last_seen=T0 + 61_000)


def test_fingerprint_uses_rule_account_key_and_group():
    a = finding(ip="127.66.0.9")
    assert fingerprint(a) == fingerprint(finding(ip="127.66.0.9", ts=T0 + 5))
    assert fingerprint(a) != fingerprint(finding(ip="127.66.0.10"))
    assert fingerprint(a) != fingerprint(finding(key="other"))
    assert fingerprint(a) != fingerprint(finding(account="other"))
    assert fingerprint(a) != fingerprint(finding(rule="other"))


def test_message_has_what_a_person_needs_at_3am():
    f = finding(signal=Signal.OVERSIZED_REJECT, evidence={
        "notional": 25000.0, "free_balance": 1520.5, "usual_notional": 180.0,
        "ips": [f"127.66.0.{i}" for i in range(12)], "last_ts": T0,
    })
    r = render_alert("kw-abc", "main", [_item(f)], Redactor())
    assert r.title == "[CRITICAL] main/grid-bot: Key called from an unknown IP [kw-abc]"
    for body in (r.text, r.markdown):
        for needle in ("CRITICAL", "main", "grid-bot", "25,000", "1,520.50", "(+2 more)",
                       "2026-07-25 17:20:00 UTC", "2026-07-25 17:21:01 UTC",
                       "API Management now", "support ticket", "other active API key",
                       "other account settings", "keywatch notebook kw-abc"):
            assert needle in body, needle
    assert "\n1. [CRITICAL]" in r.text and "**Do this now**" in r.markdown


def test_resolved_and_repeat_items_say_so():
    f = finding()
    rep = AlertItem(fingerprint(f), "repeat", f, 40, T0, T0, previous_alert_id="kw-first")
    r = render_alert("kw-2", "main", [rep], Redactor())
    assert "STILL FIRING" in r.text and "kw-first" in r.text
    res = render_alert("kw-3", "main", [_item(finding(state="resolved"), "resolved")], Redactor())
    assert "RESOLVED" in res.title and "Do this now" not in res.text


def test_secrets_and_key_shaped_strings_are_redacted_everywhere():
    key, secret = fake_secret("key"), "s3" * 10
    red = Redactor([key, secret])
    f = finding(evidence={"api_key": key, "apiKey": key, "signature": "f" * 64,
                          "query": f"symbol=BTCUSDT&signature={'0a' * 32}", "note": secret,
                          "other": "x" * 64})
    r = render_alert("kw-1", "main", [_item(f)], red)
    for body in (r.title, r.text, r.markdown):
        assert key not in body and secret not in body
        assert "0a" * 32 not in body and "x" * 64 not in body
    assert REDACTED in r.text and "symbol=BTCUSDT" in r.text
    assert "grid-bot" in r.text  # the key is shown by its label


def test_url_secrets_picks_tokens_not_plain_hosts():
    s = url_secrets("tgram://123456789:AAbbCCddEEffGGhh/-100123")
    assert "123456789:AAbbCCddEEffGGhh" in s
    assert "127.0.0.1" not in url_secrets("json://127.0.0.1:9/")
    assert "pa55word" in url_secrets("mailtos://user:pa55word@example.com")


def test_digest_lists_each_group_once():
    w = finding(rule="weight-high", sev=Severity.WARNING, signal=Signal.CALL_RATE)
    r = render_digest("kw-d", "2026-07-25", [(w, 7, T0, T0 + 1000)], Redactor())
    assert "x7" in r.text and "weight-high" in r.text and "[DIGEST]" in r.title
