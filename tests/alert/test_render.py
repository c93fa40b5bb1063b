"""Message content and redaction, as plain functions."""

from __future__ import annotations

from monitor.alert.redact import REDACTED, Redactor, url_secrets
from monitor.alert.render import AlertItem, fingerprint, render_alert, render_digest
from monitor.core.findings import Severity, Signal
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
    assert "\n1. [CRITICAL]" in r.text and "**Do this now:**" in r.markdown


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


# -- issue 14: alerts a person can act on at 3 a.m. -----------------------------------------
import re  # noqa: E402
import textwrap  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from monitor.alert import render as rd  # noqa: E402
from monitor.alert.channels import apprise, prepare  # noqa: E402
from monitor.detect.candidate import window_candidate  # noqa: E402
from monitor.detect.engine import DetectionEngine  # noqa: E402
from monitor.detect.eventrules import EVENT_EVIDENCE, event_candidate  # noqa: E402
from monitor.detect.kinds import build_detectors  # noqa: E402
from monitor.detect.rules import load_rules  # noqa: E402
from monitor.detect.windowrules import Threshold  # noqa: E402
from monitor.features import FEATURES, FeatureContext  # noqa: E402

RULES = {r.id: r for r in load_rules(Path(__file__).parents[2] / "rules")}
ENGINE = DetectionEngine(FeatureContext({}, {}, {}, {}), list(RULES.values()))


def _window_finding(rule_id, metric_value, *, key="grid-bot", **features):
    """A window rule's finding exactly as the engine builds it (candidate -> _finalise)."""
    rule = RULES[rule_id]
    m = rule.params["metric"]
    row = {"minute": T0, "account": "main", "key": key, **{f: 0 for f in FEATURES},
           m: metric_value, **features}
    det = Threshold(rule)
    cand = window_candidate(rule, row, {m: float(metric_value), "baseline": None},
                            det.summary(pd.Series(row), float(metric_value), None))
    ENGINE.cooldown.clear()  # each helper call is its own incident
    (f,) = ENGINE._finalise([cand])
    return f


def _event_finding(rule_id, **fields):
    """An event rule's finding as the engine builds it from an enriched event row."""
    row = {k: None for k in EVENT_EVIDENCE} | {"wkey": "", "placed_by": None,
                                               "event_id": "ev-1", "ts": T0,
                                               "account": "main"} | fields
    rule = RULES[rule_id]
    (det,) = build_detectors([rule], ENGINE.ctx)
    cand = event_candidate(rule, row, det.group_by)  # type: ignore[attr-defined]
    ENGINE.cooldown.clear()  # each helper call is its own incident
    (f,) = ENGINE._finalise([cand])
    return f


def _with(f, **evidence):
    return f.model_copy(update={"evidence": {**f.evidence, **evidence}})


AUTH = _window_finding("unknown_ip.auth_burst", 7, requests=9)


@pytest.mark.parametrize(("evidence", "wanted", "unwanted"), [
    ({}, "Burst of refused calls", "answers (key"),  # no codes known: claim none of them
    ({"code": -1022}, "bad signature (-1022)", "-2015"),
    ({"codes": {"-1022": 7}}, "maybe your own bot after a secret change", "-2014"),
    ({"codes": [-2015]}, "IP not whitelisted or permission missing (-2015)", "-1022"),
    ({"codes": [-2015, -1022]}, "Calls refused (-2015, -1022)", "-2014"),
])
def test_title_matches_the_codes_seen(evidence, wanted, unwanted):
    f = _with(AUTH, **evidence)
    r = render_alert("kw-c", "main", [_item(f)], Redactor())
    head = r.title + r.text.split("\n")[5]
    assert wanted in head and unwanted not in head, head


def test_bad_signature_says_it_may_be_your_own_bot_before_delete():
    f = _with(AUTH, codes={"-1022": 7})
    (first, *_) = rd.actions_for(f, Redactor())
    assert first.index("old secret") < first.index("Was this you") < first.index("delete key")


INTERNAL = ("fclass", "event_id", "ev-1", "features", "{", "window_start_ms", str(T0),
            str(T0 + 60_000), "wkey", "anchor")


@pytest.mark.parametrize("f", [
    AUTH,
    _window_finding("call_rate.weight_near_limit", 5800, requests=900, weight_max=5800),
    _event_finding("foreign.order", order_id=12345678901.0, client_order_id="web_x",
                   symbol="BTCUSDT", side="BUY", fclass="ok", source="stream", kind="order",
                   provenance="", code=None),
    _event_finding("oversized.reject_vs_balance", wkey="grid-bot", order_id=98765432101.0,
                   notional=25000.0, free_value=1520.5, notional_to_free=16.44, fclass="balance",
                   code=-2010, ip="127.66.0.9", ts=T0 + 1),
], ids=["auth_burst", "call_rate", "foreign_order", "oversized"])
def test_no_internal_fields_and_times_as_utc_text(f):
    r = render_alert("kw-i", "main", [_item(f)], Redactor())
    for body in (r.text, r.markdown):
        ev = body.split("Evidence:")[1].split("Do this now")[0]
        for bad in INTERNAL:
            assert bad not in ev, (bad, ev)
        assert "UTC" in ev
    if "order_id" in f.evidence:  # an order id is pasted into a search box: no separators
        oid = str(int(f.evidence["order_id"]))
        assert f"order id: {oid}" in r.text and f"{int(oid):,}" not in r.text


def test_account_wide_first_action_names_no_pseudo_key_and_asks_first():
    f = _event_finding("foreign.order", order_id=7.0, client_order_id="web_1", symbol="BTCUSDT",
                       side="BUY", source="stream")
    assert f.key is None
    steps = rd.actions_for(f, Redactor())
    assert steps[0].startswith("Was this you or one of your bots")
    assert "(account-wide)" not in " ".join(steps) and "delete it now" in steps[0]
    r = render_alert("kw-a", "main", [_item(f)], Redactor())
    assert "Delete key '(account-wide)'" not in r.text + r.markdown


def test_triage_question_comes_before_delete_for_a_key():
    f = _event_finding("unknown_ip.new_caller", wkey="grid-bot", ip="127.66.0.9")
    first = rd.actions_for(f, Redactor())[0]
    assert first.startswith("Was this you") and first.index("?") < first.index("delete key")


def test_a_new_address_is_shown_beside_the_whitelist_and_the_known_ones():
    f = _event_finding("unknown_ip.new_caller", wkey="grid-bot", ip="127.66.0.9")
    ctx = {("main", "grid-bot"): rd.KeyContext(("127.66.0.1/32",), ("127.66.0.1", "127.66.0.2"))}
    r = render_alert("kw-n", "main", [_item(f)], Redactor(), ctx)
    assert "caller IP: 127.66.0.9" in r.text
    assert "declared whitelist: 127.66.0.1/32" in r.text
    assert "addresses seen before: 127.66.0.1, 127.66.0.2" in r.text
    bare = {("main", "grid-bot"): rd.KeyContext()}
    assert "declared whitelist: none declared" in render_alert(
        "kw-n", "main", [_item(f)], Redactor(), bare).text


def _five():
    return [
        _with(AUTH, codes={"-1022": 7}),
        _window_finding("call_rate.weight_near_limit", 5800, requests=900),
        _event_finding("unknown_ip.new_caller", wkey="grid-bot", ip="127.66.0.9"),
        _event_finding("foreign.order", order_id=12345678901.0, client_order_id="web_x",
                       symbol="BTCUSDT", side="BUY", source="stream"),
        _event_finding("oversized.reject_vs_balance", wkey="grid-bot", order_id=98765432101.0,
                       notional=25000.0, free_value=1520.5, code=-2010, ip="127.66.0.9"),
    ]


def test_no_step_is_repeated_in_a_message():
    r = render_alert("kw-5", "main", [_item(f) for f in _five()], Redactor())
    steps = [line.split(". ", 1)[1] for line in r.text.split("\n")
             if re.match(r"^   \d+\. ", line)]
    assert len(steps) == len(set(steps)), steps
    assert "above." in r.text  # the later items refer to the steps already listed
    assert "Inspect every other active API key" in r.text


def test_email_plain_text_part_reads_well():
    """Apprise's e-mail plugin sends HTML made from the Markdown plus a text/plain part made
    from that HTML; that part must read like the plain-text body."""
    from apprise.conversion import convert_between

    F = apprise.NotifyFormat
    r = render_alert("kw-m", "main", [_item(f) for f in _five()], Redactor())
    plain = convert_between(F.HTML, F.TEXT, convert_between(F.MARKDOWN, F.HTML, r.markdown))
    assert "\\" not in plain and "**" not in plain and "\n\n\n" not in plain
    assert "caller IP: 127.66.0.9" in plain  # label and value on one line
    assert re.search(r"^ ?1\. Bad signatures \(-1022\)", plain, re.M)  # numbered, not bullets
    assert re.search(r"Investigate:\s+keywatch notebook kw-m", plain)  # the command, whole
    evidence = plain.split("Evidence:")[1].split("Do this now:")[0]
    assert not re.search(r":\n\S", evidence)  # no value on its own line
    assert ";\n" not in plain  # a rule's sentence cut at ';' ends as a sentence


HUGE = {"note": "x " * 20_000, "ips": [f"127.66.{i // 250}.{i % 250}" for i in range(3000)]}
URLS = {
    "tgram": "tgram://123456789:AAbbCCddEEffGGhh/-100123/?image=no",
    "discord": "discord://1234/abcd/",
    "pover": "pover://u" + "1" * 29 + "@a" + "2" * 29,
    "ntfy": "ntfy://example.invalid/topic",
    "json": "json://example.invalid/",
    "mailto": "mailto://u:p@example.invalid?to=oncall@example.invalid",
}


@pytest.mark.parametrize("scheme", sorted(URLS))
@pytest.mark.parametrize("case", ["five_findings", "huge_evidence"])
def test_message_fits_each_channels_limit(scheme, case, monkeypatch):
    fs = _five() if case == "five_findings" else [_with(AUTH, **HUGE)]
    r = render_alert("kw-l", "main", [_item(f) for f in fs], Redactor())
    ap = apprise.Apprise()
    assert ap.add(URLS[scheme])
    server = next(iter(ap))
    title, body, fmt = prepare(ap, r.title, r.text, r.markdown)
    assert "keywatch notebook kw-l" in body and "kw-l" in title
    assert body.startswith(("Keywatch alert kw-l", "**Keywatch alert kw-l**"))
    if scheme == "mailto":  # sent by SMTP (tests/alert/test_delivery.py): the limit only
        assert len(body) <= server.body_maxlen
        return
    sent = []

    class Ok:
        status_code, content, text, headers = 200, b'{"ok": true, "status": 1}', "{}", {}

    def post(url, data=None, json=None, **kw):
        sent.append(json if data is None else data)
        return Ok()

    monkeypatch.setattr("requests.post", post)
    monkeypatch.setattr("requests.request", lambda method, url, **kw: post(url, **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ap.notify(body=body, title=title, body_format=fmt)
    assert len(sent) == 1  # one message, not split
    payload = sent[0]
    if isinstance(payload, bytes):
        payload = payload.decode()
    if isinstance(payload, str) and payload.startswith("{"):
        payload = __import__("json").loads(payload)
    if isinstance(payload, dict):
        payload = next(payload[k] for k in ("text", "content", "message", "body") if k in payload)
    assert len(payload) <= server.body_maxlen, (scheme, len(payload), server.body_maxlen)


def test_the_manager_shows_the_configured_whitelist_beside_a_new_address(tmp_path):
    """Through the alert manager, with contexts built from a loaded config as the service
    would build them (the new address itself is not listed as 'seen before')."""
    from monitor.alert.manager import AlertManager
    from monitor.config import load_config
    from monitor.core.clock import ManualClock
    from monitor.store import SQLiteStore
    from tests.alert.conftest import MONITOR_ACCOUNT_TOML, alerts_cfg

    (tmp_path / "k.toml").write_text(
        f'rules_dir = "{Path("rules").resolve()}"\n' + MONITOR_ACCOUNT_TOML + textwrap.dedent("""
          [[accounts.keys]]
          label = "grid-bot"
          use_case = "spot-bot"
          api_key_sha256 = "%s"
          ip_whitelist = ["127.66.0.1"]
        """ % ("ab" * 32)))
    cfg = load_config(tmp_path / "k.toml", env={"KW_KEY": fake_secret("k"),
                                                  "KW_SECRET": fake_secret("s")})
    seen = {("main", "grid-bot", "127.66.0.1"), ("main", "grid-bot", "127.66.0.9")}
    store = SQLiteStore(tmp_path / "kw.db")
    mgr = AlertManager(store, ManualClock(T0), alerts_cfg(), channels=[],
                       key_context=lambda: rd.key_contexts(cfg.accounts, seen))
    mgr.submit([_event_finding("unknown_ip.new_caller", wkey="grid-bot", ip="127.66.0.9")])
    mgr.flush(T0 + 600_000, final=True)
    (alert,) = store.load_alerts()
    assert "declared whitelist: 127.66.0.1\n" in alert.body  # a /32 reads as the address
    assert "addresses seen before: 127.66.0.1" in alert.body
    assert "seen before: 127.66.0.1, 127.66.0.9" not in alert.body
    store.close()
