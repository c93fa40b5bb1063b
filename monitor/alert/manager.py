"""Findings in, alerts out: the alert stages (`stages/`), listed and run top to bottom.

Plain synchronous logic over the store and an injected clock, so replay, the live service and
the tests share it. `submit` persists the findings and folds the paging ones into
per-fingerprint `AlertState` records (pending -> firing -> resolved, `stages/fold.py`); `flush`
turns every group whose wait is over into one outbox alert, and once a day writes the digest.
A NEW incident is never held back: it is folded into the open alert and delivered after
group_wait, whatever the cooldown or the repeat interval say; a repeat of an incident already
announced is what repeat_interval and cooldown hold back. High and critical findings alert at
once; warning and info findings go to the daily digest.

The alert and its deliveries are written to the store's outbox before any send (the notifier
only reads the outbox). Alert ids are derived from their content, so a flush re-run after a
crash writes the same alert id and the outbox ignores the duplicate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from monitor.alert.channels import Channel, load_channels
from monitor.alert.redact import Redactor
from monitor.alert.stages import group, resolve
from monitor.alert.stages.base import FindingStage
from monitor.alert.stages.digest import DIGEST_CURSOR, Digest
from monitor.alert.stages.fold import Fold
from monitor.alert.stages.inhibit import Inhibit
from monitor.alert.stages.intake import Enrich, Page, Record, Scrub, immediate
from monitor.alert.stages.outbox import Outbox
from monitor.alert.stages.repeat import Repeat
from monitor.alert.stages.silence import Silence
from monitor.alert.wording import KeyContext
from monitor.config import AlertsConfig
from monitor.core.clock import Clock
from monitor.core.findings import Finding
from monitor.store import AlertState, Store

__all__ = ["DIGEST_CURSOR", "AlertManager", "immediate"]


class AlertManager:
    """Turns findings into outbox alerts. One instance per store (it caches state)."""

    def __init__(
        self, store: Store, clock: Clock, cfg: AlertsConfig, *, secrets: Iterable[str] = (),
        channels: list[Channel] | None = None,
        on_silenced: Callable[[Finding], None] | None = None,
        key_context: Callable[[], Mapping[tuple[str, str], KeyContext]] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.cfg = cfg
        self.channels = load_channels(cfg) if channels is None else channels
        self.redactor = Redactor(secrets)
        self.counters: dict[str, int] = defaultdict(int)
        # each finding a silence kept from alerting (the service's metrics)
        self.on_silenced = on_silenced or (lambda _f: None)
        # per (account, key): declared whitelist and known addresses, shown beside a new one
        # (render.key_contexts(cfg.accounts, engine.seen_ips()): monitor/service/wiring.py)
        self.key_context = key_context or (lambda: {})
        self.silence = Silence(store, self.counters, self.on_silenced)
        self.intake: tuple[FindingStage, ...] = (
            Enrich(store),
            Scrub(self.redactor, self.counters),
            Record(store, self.counters),
            Page(),
            self.silence,
            Inhibit(),
        )
        self.fold = Fold(store, Repeat(cfg, self.counters), self.counters)
        self.outbox = Outbox(store, cfg, self.channels, self.redactor, self.key_context,
                             self.counters)
        self.digest = Digest(store, cfg, self.channels, self.redactor, self.silence)

    def submit(self, findings: list[Finding]) -> None:
        """Persist findings and fold the ones that page into per-fingerprint state."""
        if not findings:
            return
        now = self.clock.now_ms()
        for stage in self.intake:
            findings = stage.run(findings, now)
            if not findings:
                return
        self.store.save_alert_states(self.fold.run(findings, now), now)

    def flush(self, now_ms: int | None = None, *, final: bool = False) -> list[str]:
        """Write every group whose wait is over (and a due digest) to the outbox.

        `final=True` (shutdown) writes every waiting group now: a group still waiting when the
        process stops would otherwise be sent only after a restart.
        """
        now = self.clock.now_ms() if now_ms is None else now_ms
        wait_ms = int(self.cfg.group_wait_s * 1000)
        silences = self.silence.active(now)
        out: list[str] = []
        for account, waiting in group.due(self.fold.pending(), wait_ms, now, final=final):
            shown: list[AlertState] = []
            dropped: list[AlertState] = []
            for st in sorted(waiting, key=lambda s: s.fingerprint):
                kept = self.silence.keep([st.finding], silences, now, waited=True)
                (shown if kept else dropped).append(st)
            alert_id = self.outbox.send(account, shown, now) if shown else None
            settled = resolve.settle(waiting, dropped, alert_id, now)
            self.fold.put(settled)
            self.store.save_alert_states(settled, now)
            if alert_id:
                out.append(alert_id)
        digest = self.digest.run(now)
        if digest:
            out.append(digest)
        return out
