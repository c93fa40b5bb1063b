"""Secrets are found by pattern, not exact name, and never reach the store, an alert or a log.

Before: `apiSecret=` and `secret_key=` (and any other spelling) were stored verbatim in
`events.raw`, because `events.py` matched seven exact lower-case names. The property: for a
generated secret-like name (any case, `_`/`-`/no separator, with a prefix and a suffix) and a
random value, the value appears in none of the stored event, the rendered alert, the log line.
"""

from __future__ import annotations

import itertools
import json
import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alert.manager import AlertManager
from monitor.binance import logfilter
from monitor.collect.logfile import parse_line
from monitor.core.clock import ManualClock
from monitor.core.events import raw_json
from monitor.core.findings import Finding, Severity, Signal
from monitor.core.redaction import SECRET_WORDS, is_secret_name, scrub_text
from monitor.store import SQLiteStore
from tests.alert.conftest import alerts_cfg, channel

T0 = 1_785_000_000_000
_seq = itertools.count()


@st.composite
def secret_names(draw: st.DrawFn) -> str:
    """`apiSecret`, `secret_key`, `X-Api-Token`, `USER_PASSWORD`, `privateKey2` ..."""
    parts = [draw(st.sampled_from(["", "api", "user", "x", "binance", "my"])),
             draw(st.sampled_from(SECRET_WORDS)),
             draw(st.sampled_from(["", "key", "value", "2", "id"]))]
    sep = draw(st.sampled_from(["_", "-", ""]))
    style = draw(st.sampled_from(["lower", "upper", "camel", "title"]))
    parts = [p for p in parts if p]
    if style == "camel":
        return parts[0] + "".join(p.title() for p in parts[1:])
    name = sep.join(p.title() if style == "title" else p for p in parts)
    return name.upper() if style == "upper" else name


# random like a generated secret (a digit, an upper and a lower case letter), so it can not be
# a word the alert says anyway ("fingerprint")
secret_values = st.text(alphabet="abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789",
                        min_size=12, max_size=64).filter(
    lambda v: any(c.isdigit() for c in v) and any(c.isupper() for c in v)
    and any(c.islower() for c in v))


def _stored(name: str, value: str) -> str:
    """What the store would hold: a log line through the log source's own parser (query and
    top-level field), and a tap-shaped raw (params, headers, an error text)."""
    line = json.dumps({
        "ts": T0, "ip": "10.0.0.5", "method": "GET", "status": 200,
        "endpoint": f"/api/v3/account?timestamp={T0}&{name}={value}&recvWindow=5000",
        name: value, "note": f"{name}: {value}",
    })
    ev = parse_line(line, "main", T0)
    tap = raw_json({"params": {name: value, "symbol": "BTCUSDT"},
                    "headers": {name: value}, "error": f'upstream said {{"{name}": "{value}"}}'})
    return ev.model_dump_json() + tap


def _alert_text(name: str, value: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "kw.db")
        try:
            mgr = AlertManager(store, ManualClock(T0), alerts_cfg(channel("hook", "json://x/"),
                                                                  group_wait_s=0))
            mgr.submit([Finding(
                finding_id=f"f:{next(_seq)}", ts=T0, rule_id="unknown_ip.new_caller",
                signal=Signal.UNKNOWN_IP, severity=Severity.CRITICAL, account="main", key="bot",
                title="Key called from an unfamiliar IP address",
                summary=f"GET /api/v3/account?{name}={value} from 10.9.9.9",
                evidence={name: value, "url": f"/sapi?x=1&{name}={value}"}, group={},
            )])
            mgr.flush(T0 + 1)
            return json.dumps([asdict(a) for a in store.load_alerts()])
        finally:
            store.close()


def _logged(name: str, value: str) -> str:
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    root, handler = logging.getLogger(), Keep()
    root.addHandler(handler)
    try:
        logfilter.install()  # what every Binance client does at construction
        logging.getLogger("monitor.collect.poller").warning(
            "poll step failed: GET /api/v3/order?%s=%s: %s", name, value, {name: value})
        logging.getLogger("httpx").warning("HTTP Request: GET https://x/?%s=%s", name, value)
    finally:
        root.removeHandler(handler)
    return "\n".join(records)


@settings(max_examples=40, deadline=None)
@given(secret_names(), secret_values)
def test_a_secret_value_never_reaches_the_store_an_alert_or_a_log(name: str, value: str):
    assert is_secret_name(name), name
    stored = _stored(name, value)
    assert value not in stored, stored
    assert "[redacted]" in stored
    assert value not in _alert_text(name, value)
    assert value not in _logged(name, value)


def test_the_old_misses_and_what_is_kept() -> None:
    stored = _stored("apiSecret", "s3cr3tValueXyz9")
    assert "s3cr3tValueXyz9" not in stored
    assert "s3cr3tValueXyz9" not in scrub_text("GET /x?secret_key=s3cr3tValueXyz9&a=1")
    # fingerprints and ordinary parameters stay: they are how a key is named without it
    assert not is_secret_name("api_key_sha256") and not is_secret_name("recvWindow")
    kept = raw_json({"params": {"symbol": "BTCUSDT", "newClientOrderId": "bot-1"},
                     "api_key_sha256": "ab" * 32, "endpoint": "/api/v3/order?symbol=BTCUSDT"})
    assert json.loads(kept) == {"params": {"symbol": "BTCUSDT", "newClientOrderId": "bot-1"},
                                "api_key_sha256": "ab" * 32,
                                "endpoint": "/api/v3/order?symbol=BTCUSDT"}
    # by shape: a mixed-case 64-character run (a Binance key) goes, a hex digest stays
    key_like = "Ab3" * 21 + "Z"
    assert scrub_text(f"pasted {key_like} here") == "pasted [redacted] here"
    assert scrub_text(f"digest {'ab12' * 16}") == f"digest {'ab12' * 16}"
