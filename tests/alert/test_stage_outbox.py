"""The outbox stage: one group, one alert, typed lines, an id that a re-run repeats."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from monitor.alert.redact import Redactor
from monitor.alert.stages.outbox import Outbox, item
from monitor.store import AlertLine
from tests.alert.conftest import T0, alerts_cfg, channel, finding
from tests.alert.stagekit import opened

HOOK = channel("hook", "json://127.0.0.1:9/", ["critical"])


def _outbox(store) -> tuple[Outbox, dict[str, int]]:
    counters: dict[str, int] = defaultdict(int)
    cfg = alerts_cfg(HOOK)
    from monitor.alert.channels import load_channels

    return Outbox(store, cfg, load_channels(cfg), Redactor(), lambda: {}, counters), counters


def test_one_record_is_one_alert_with_its_line(store) -> None:
    outbox, counters = _outbox(store)
    st = opened(finding(), count=3)
    alert_id = outbox.send("main", [st], T0 + 10)
    alert = store.load_alert(alert_id)
    assert alert is not None
    assert (alert.fingerprint, alert.kind, alert.severity, alert.key) == (
        st.fingerprint, "firing", "critical", "grid-bot")
    assert alert.payload.items == (AlertLine(
        fingerprint=st.fingerprint, kind="new", rule_id="unknown-ip",
        finding_id=st.finding.finding_id, key="grid-bot", signal="unknown_ip", count=3,
        incident="ip=127.66.0.9", incidents=1),)
    assert alert.payload.fingerprints == (st.fingerprint,) and alert.payload.markdown
    assert [d.channel for d in store.deliveries(alert_id)] == ["hook"]
    assert outbox.send("main", [st], T0 + 20) == alert_id  # a re-run: the same id, no copy
    assert counters["alerts"] == 1 and len(store.load_alerts()) == 1


def test_a_group_names_all_its_fingerprints_and_a_mixed_kind_is_firing(store) -> None:
    outbox, _ = _outbox(store)
    a = opened(finding(ip="127.66.0.1"), kind="repeat")
    b = opened(finding(ip="127.66.0.2", key="dca-bot"), kind="update")
    alert = store.load_alert(outbox.send("main", sorted([a, b], key=lambda s: s.fingerprint),
                                         T0))
    assert alert is not None and alert.fingerprint.startswith("group:")
    assert (alert.kind, alert.key) == ("firing", None)
    assert sorted(alert.payload.fingerprints) == sorted([a.fingerprint, b.fingerprint])
    only_repeats = store.load_alert(outbox.send("main", [replace(a, pending_since=T0 + 1)], T0))
    assert only_repeats is not None and only_repeats.kind == "repeat"


def test_an_item_names_the_earlier_alert_unless_it_is_new() -> None:
    st = opened(finding(), last_alert_id="kw-1", count=0)
    assert item(st).previous_alert_id is None and item(st).count == 1
    assert item(replace(st, kind="update")).previous_alert_id == "kw-1"
