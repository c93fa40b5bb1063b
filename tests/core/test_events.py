from __future__ import annotations

import pytest
from pydantic import ValidationError

from monitor.core.events import Event, Kind, Source, make_event_id, raw_json, redact
from tests.factories import T0, full_event


def base(**kw):
    d = dict(event_id="rest:order:1:2", ts=T0, received_ts=T0, account="main",
             source=Source.REST, kind=Kind.ORDER)
    d.update(kw)
    return d


@pytest.mark.parametrize(
    "override, message",
    [
        ({"ts": T0 // 1000}, "not a millisecond epoch time"),
        ({"ts": T0 * 1000}, "not a millisecond epoch time"),
        ({"event_id": "stream:1"}, "must start with 'rest:'"),
        ({"account": " "}, "must not be empty"),
        ({"ip": "300.1.1.1"}, "does not appear to be an IPv4 or IPv6 address"),
        ({"status": 42}, "is not an HTTP status"),
        ({"qty": -1.0}, "must be >= 0"),
        ({"kind": "teleport"}, "Input should be"),
        ({"raw": "{not json"}, "raw must be JSON text"),
        ({"raw": '{"params": {"signature": "abc"}}'}, "secret fields ['params.signature']"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_events_are_refused_with_a_reason(override, message):
    with pytest.raises(ValidationError) as err:
        Event(**base(**override))
    assert message in str(err.value)


def test_normalisation():
    ev = Event(**base(side="buy", method="get", ip="::ffff:127.0.0.1"))
    assert ev.side == "BUY" and ev.method == "GET"
    assert ev.ip == "::ffff:7f00:1"


def test_event_ids_are_deterministic_and_prefixed():
    assert make_event_id("stream", 28, "TRADE", 1785) == "stream:28:TRADE:1785"
    assert make_event_id(Source.REST, "order", 28, 99) == "rest:order:28:99"
    with pytest.raises(ValueError):
        make_event_id("nowhere", 1)
    with pytest.raises(ValueError):
        make_event_id("tap")


def test_redact_removes_secrets_at_any_depth():
    payload = {"apiKey": "k", "params": {"signature": "s", "symbol": "BTCUSDT"},
               "list": [{"X-MBX-APIKEY": "k", "ok": 1}]}
    assert redact(payload) == {"params": {"symbol": "BTCUSDT"}, "list": [{"ok": 1}]}
    assert "signature" not in raw_json(payload)


def test_events_are_immutable():
    ev = full_event(1)
    with pytest.raises(ValidationError):
        ev.qty = 5.0  # type: ignore[misc]
