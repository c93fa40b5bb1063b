"""The outbox stage: one due group becomes one alert, written with its deliveries before any send.

Alert ids are derived from their content (account, each record's fingerprint, kind and
`pending_since`), so a flush re-run after a crash writes the same id and the outbox ignores the
duplicate. The notifier (`notify.py`) only reads the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from monitor.alert.channels import Channel, severity_channels
from monitor.alert.redact import Redactor
from monitor.alert.render import AlertItem, make_alert_id, render_alert
from monitor.alert.stages.base import Counters
from monitor.alert.wording import KeyContext
from monitor.config import AlertsConfig
from monitor.core.findings import incident_id
from monitor.store import AlertLine, AlertPayload, AlertState, Store

log = logging.getLogger("monitor.alert.manager")
KeyContexts = Callable[[], Mapping[tuple[str, str], KeyContext]]


def item(st: AlertState) -> AlertItem:
    return AlertItem(
        fingerprint=st.fingerprint, kind=st.kind, finding=st.finding, count=max(1, st.count),
        first_seen=st.first_seen, last_seen=st.last_seen,
        previous_alert_id=st.last_alert_id if st.kind != "new" else None,
        incidents=st.n_incidents,
    )


def line(i: AlertItem) -> AlertLine:
    f = i.finding
    return AlertLine(
        fingerprint=i.fingerprint, kind=i.kind, rule_id=f.rule_id, finding_id=f.finding_id,
        key=f.key, signal=f.signal.value, count=i.count,
        incident=incident_id(f.signal, f.evidence), incidents=i.incidents,
    )


class Outbox:
    def __init__(self, store: Store, cfg: AlertsConfig, channels: list[Channel],
                 redactor: Redactor, key_context: KeyContexts, counters: Counters) -> None:
        self.store = store
        self.cfg = cfg
        self.channels = channels
        self.redactor = redactor
        self.key_context = key_context
        self.counters = counters

    def send(self, account: str, shown: Sequence[AlertState], now: int) -> str:
        """Queue the alert for `shown` (sorted by fingerprint); return its id."""
        alert_id = make_alert_id(
            account, *sorted(f"{st.fingerprint}:{st.kind}:{st.pending_since}" for st in shown)
        )
        items = [item(st) for st in shown]
        r = render_alert(alert_id, account, items, self.redactor, self.key_context())
        sev = max((i.finding.severity for i in items), key=lambda s: s.rank)
        kinds = {i.kind for i in items}
        kind = kinds.pop() if len(kinds) == 1 else "firing"
        kind = "firing" if kind == "new" else kind
        fps = sorted(i.fingerprint for i in items)
        keys = {i.finding.key for i in items}
        channels = severity_channels(self.channels, self.cfg, sev)
        payload = AlertPayload(markdown=r.markdown, fingerprints=tuple(fps),
                               items=tuple(line(i) for i in items))
        new = self.store.enqueue_alert(
            alert_id, fps[0] if len(fps) == 1 else "group:" + make_alert_id(*fps)[3:], now,
            sev.value, account, keys.pop() if len(keys) == 1 else None, kind, r.title, r.text,
            payload, channels,
        )
        if not channels:
            log.warning("alert %s (%s) matches no channel; check alerts.routing", alert_id,
                        sev.value)
        if new:
            self.counters["alerts"] += 1
            log.info("alert %s queued: %s %s, %d item(s), channels %s", alert_id, sev.value,
                     account, len(items), ",".join(channels) or "-")
        return alert_id
