"""Findings in, alerts out: dedupe, grouping, cooldown, silences, resolved notices, digest.

Plain synchronous logic over the store and an injected clock, so replay, the live service and
the tests share it. `submit` runs its stages top to bottom: add what the stored events say
(`evidence.py`: the codes behind a failure count, the address an unexplained order came from),
scrub secrets, persist, keep the paging ones, drop silenced ones (logged, counted,
`on_silenced`), fold into per-fingerprint state. Per fingerprint (rule, account, key, the
rule's grouping fields) a record in the store walks through

    (none) --finding--> pending --flush after group_wait--> firing --resolved--> pending(resolved)
                                                             |  |                      |
                         repeat_interval and cooldown passed +  + a NEW incident       v
                                          pending(repeat)         pending(update)   resolved

An incident is one fingerprint plus the evidence that names one thing that happened
(`findings.incident_id`: an order id, a withdrawal, a caller IP); a finding without such
evidence is a condition, one incident per fingerprint. A repeat of an incident already
announced is what repeat_interval and cooldown hold back; a NEW incident is never held back:
it is folded into the open alert (count, newest evidence, the earlier alert's id) and delivered
after group_wait, whatever the cooldown or the repeat interval say. A fingerprint that resolved
and fires again inside `cooldown_s` with the same incident goes back to firing quietly
(flapping). High and critical findings alert at once; warning and info findings go to the
daily digest.

The alert and its deliveries are written to the store's outbox before any send (the notifier
only reads the outbox). Alert ids are derived from their content, so a flush re-run after a
crash writes the same alert id and the outbox ignores the duplicate.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.alert.channels import Channel, digest_channels, load_channels, severity_channels
from monitor.alert.evidence import with_store_evidence
from monitor.alert.redact import Redactor
from monitor.alert.render import (
    AlertItem,
    fingerprint,
    make_alert_id,
    render_alert,
    render_digest,
)
from monitor.alert.wording import KeyContext
from monitor.config import AlertsConfig
from monitor.core.clock import Clock
from monitor.core.findings import Finding, Severity, incident_id
from monitor.store import Silence, Store

log = logging.getLogger(__name__)
DAY_MS = 86_400_000
DIGEST_CURSOR = "alert.digest.cut"
MAX_INCIDENTS = 100  # incident ids remembered per firing fingerprint (the oldest are forgotten)


def immediate(f: Finding) -> bool:
    """High and critical findings page someone; lower ones wait for the digest."""
    return f.severity.rank >= Severity.HIGH.rank


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
        # every pending record is in the cache, so a restart resumes waiting groups
        self._states: dict[str, dict[str, Any]] = {
            s["fingerprint"]: s for s in store.load_alert_states(state="pending")
        }

    # -- intake ----------------------------------------------------------------------------
    def submit(self, findings: list[Finding]) -> None:
        """Persist findings and fold the ones that page into per-fingerprint state."""
        if not findings:
            return
        now = self.clock.now_ms()
        findings = [self._scrub(f) for f in with_store_evidence(self.store, findings)]
        self.store.insert_findings(findings)
        self.counters["findings"] += len(findings)
        paging = [f for f in findings if immediate(f)]
        if not paging:
            return
        paging = self._unsilenced(paging, self.store.silences(now), now)
        self._load({fingerprint(f) for f in paging})
        changed: dict[str, dict[str, Any]] = {}
        for f in paging:
            fp = fingerprint(f)
            st = self._fold(self._states.get(fp), f, fp, now)
            if st is not None:
                self._states[fp] = st
                changed[fp] = st
        self.store.save_alert_states(list(changed.values()), now)

    def _fold(
        self, st: dict[str, Any] | None, f: Finding, fp: str, now: int
    ) -> dict[str, Any] | None:
        state = st["state"] if st else "idle"
        inc = incident_id(f.signal, f.evidence)
        if f.state == "resolved":
            if state == "firing":
                assert st is not None
                return {**st, "state": "pending", "kind": "resolved", "pending_since": now,
                        "last_seen": f.ts, "finding": f.model_dump_json()}
            return None  # nothing was announced (or it already cleared): nothing to resolve
        if state == "idle" or (state == "resolved" and not self._cooling(st, now)):
            self.counters["new"] += 1
            return {
                "fingerprint": fp, "account": f.account, "rule_id": f.rule_id, "key": f.key,
                "state": "pending", "kind": "new", "pending_since": now, "first_seen": f.ts,
                "last_seen": f.ts, "count": 1, "finding": f.model_dump_json(),
                "incidents": [inc] if inc else [], "n_incidents": 1,
                "last_notified_ts": st.get("last_notified_ts") if st else None,
                "last_alert_id": st.get("last_alert_id") if st else None,
            }
        assert st is not None
        seen: list[str] = st.get("incidents") or []
        fresh = inc is not None and inc not in seen
        st = {**st, "count": st.get("count", 0) + 1, "last_seen": max(st["last_seen"], f.ts)}
        if fresh:  # a new incident: remembered, shown, and never held back
            assert inc is not None
            st["incidents"] = [*seen, inc][-MAX_INCIDENTS:]
            st["n_incidents"] = st.get("n_incidents", 1) + 1
            self.counters["new_incidents"] += 1
        if state == "pending" and st["kind"] != "resolved":
            shown = Finding.model_validate_json(st["finding"])
            if fresh or inc is None or inc == incident_id(shown.signal, shown.evidence):
                st["finding"] = f.model_dump_json()  # the newest evidence of the newest incident
            if fresh and st["kind"] == "repeat":
                st["kind"] = "update"
            self.counters["grouped"] += 1
            return st
        if fresh:  # firing, resolved inside the cooldown, or a resolved notice still waiting
            return {**st, "state": "pending", "kind": "update", "pending_since": now,
                    "finding": f.model_dump_json()}
        if state == "resolved":  # flapping inside the cooldown: firing again, quietly
            self.counters["deduped"] += 1
            return {**st, "state": "firing", "count": 1, "first_seen": f.ts}
        if state == "pending":  # the same incident fired again before the resolved notice left
            return {**st, "state": "firing", "kind": "new", "count": 1}
        # firing, same incident: a reminder once the repeat interval and the cooldown passed
        if now - (st.get("last_notified_ts") or 0) >= self._repeat_ms():
            return {**st, "state": "pending", "kind": "repeat", "pending_since": now,
                    "finding": f.model_dump_json()}
        self.counters["deduped"] += 1
        return st

    # -- output ----------------------------------------------------------------------------
    def flush(self, now_ms: int | None = None, *, final: bool = False) -> list[str]:
        """Write every group whose wait is over (and a due digest) to the outbox.

        `final=True` (shutdown) writes every waiting group now: a group still waiting when the
        process stops would otherwise be sent only after a restart.
        """
        now = self.clock.now_ms() if now_ms is None else now_ms
        by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for st in self._states.values():
            if st["state"] == "pending":
                by_account[st["account"]].append(st)
        wait = int(self.cfg.group_wait_s * 1000)
        silences = self.store.silences(now)
        out: list[str] = []
        for account, group in sorted(by_account.items()):
            if not final and min(s["pending_since"] for s in group) + wait > now:
                continue
            alert_id = self._flush_group(account, group, silences, now)
            if alert_id:
                out.append(alert_id)
        digest = self._maybe_digest(now)
        if digest:
            out.append(digest)
        return out

    def _flush_group(
        self, account: str, group: list[dict[str, Any]], silences: list[Silence], now: int
    ) -> str | None:
        items: list[AlertItem] = []
        done: list[dict[str, Any]] = []
        for st in sorted(group, key=lambda s: s["fingerprint"]):
            f = Finding.model_validate_json(st["finding"])
            if not self._unsilenced([f], silences, now, waited=True):
                back = {"new": "idle", "repeat": "firing", "update": "firing",
                        "resolved": "resolved"}[st["kind"]]
                done.append({**st, "state": back})
                continue
            items.append(AlertItem(
                fingerprint=st["fingerprint"], kind=st["kind"], finding=f,
                count=max(1, st.get("count", 1)), first_seen=st["first_seen"],
                last_seen=st["last_seen"],
                previous_alert_id=st.get("last_alert_id") if st["kind"] != "new" else None,
                incidents=st.get("n_incidents", 1),
            ))
        alert_id = None
        if items:
            alert_id = make_alert_id(
                account, *sorted(f"{i.fingerprint}:{i.kind}:{st_since(group, i)}" for i in items)
            )
            self._enqueue(alert_id, account, items, now)
        for st in group:
            if any(d["fingerprint"] == st["fingerprint"] for d in done):
                continue
            nxt = "resolved" if st["kind"] == "resolved" else "firing"
            done.append({**st, "state": nxt, "count": 0, "last_notified_ts": now,
                         "last_alert_id": alert_id})
        for st in done:
            self._states[st["fingerprint"]] = st
        self.store.save_alert_states(done, now)
        return alert_id

    def _enqueue(self, alert_id: str, account: str, items: list[AlertItem], now: int) -> None:
        r = render_alert(alert_id, account, items, self.redactor, self.key_context())
        sev = max((i.finding.severity for i in items), key=lambda s: s.rank)
        kinds = {i.kind for i in items}
        kind = kinds.pop() if len(kinds) == 1 else "firing"
        kind = "firing" if kind == "new" else kind
        fps = sorted(i.fingerprint for i in items)
        keys = {i.finding.key for i in items}
        channels = severity_channels(self.channels, self.cfg, sev)
        payload = {
            "markdown": r.markdown, "fingerprints": fps,
            "items": [{"fingerprint": i.fingerprint, "kind": i.kind, "rule_id": i.finding.rule_id,
                       "finding_id": i.finding.finding_id, "key": i.finding.key,
                       "signal": i.finding.signal.value, "count": i.count,
                       "incident": incident_id(i.finding.signal, i.finding.evidence),
                       "incidents": i.incidents} for i in items],
        }
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

    def _maybe_digest(self, now: int) -> str | None:
        cut = now - now % DAY_MS + self.cfg.digest_hour_utc * 3_600_000
        if cut > now:
            cut -= DAY_MS
        last_raw = self.store.get_cursor(DIGEST_CURSOR)
        last = int(last_raw) if last_raw is not None else None
        if last is not None and last >= cut:
            return None
        since = last if last is not None else cut - DAY_MS
        silences = self.store.silences()
        rows: dict[str, list[Any]] = {}
        for f in self.store.load_findings(since, cut):
            if immediate(f) or f.state != "firing" or not self._unsilenced([f], silences, f.ts):
                continue
            fp = fingerprint(f)
            row = rows.setdefault(fp, [f, 0, f.ts, f.ts])
            row[0], row[1], row[3] = f, row[1] + 1, max(row[3], f.ts)
        alert_id = None
        if rows:
            alert_id = make_alert_id("digest", cut)
            day = _day(cut)
            r = render_digest(alert_id, day, [tuple(v) for v in rows.values()], self.redactor)
            sev = max((v[0].severity for v in rows.values()), key=lambda s: s.rank)
            self.store.enqueue_alert(
                alert_id, "digest", now, sev.value, "*", None, "digest", r.title, r.text,
                {"markdown": r.markdown, "fingerprints": sorted(rows), "day": day},
                digest_channels(self.channels, self.cfg),
            )
            log.info("digest %s queued: %d finding group(s)", alert_id, len(rows))
        self.store.set_cursor(DIGEST_CURSOR, str(cut))
        return alert_id

    # -- helpers ---------------------------------------------------------------------------
    def _unsilenced(
        self, findings: list[Finding], silences: list[Silence], now: int, *, waited: bool = False
    ) -> list[Finding]:
        """The silence stage: findings no active silence matches. Each silenced one is logged,
        counted and reported to `on_silenced`, so a silence never hides a finding silently."""
        out: list[Finding] = []
        for f in findings:
            s = next((s for s in silences if s.matches_finding(f, now)), None)
            if s is None:
                out.append(f)
                continue
            self.counters["silenced"] += 1
            self.on_silenced(f)
            log.info("finding %s (%s, %s/%s%s) silenced%s by silence %d until %s: %s",
                     f.finding_id, f.rule_id, f.account, f.key or "-",
                     f" ip {s.ip}" if s.ip else "", " while its group waited" if waited else "",
                     s.silence_id, _iso(s.expires_ts), s.reason)
        return out

    def _scrub(self, f: Finding) -> Finding:
        """Defensive: a secret that slipped into a finding never reaches the store or a message."""
        red = self.redactor
        clean = {
            "title": red.text(f.title), "summary": red.text(f.summary),
            "action": red.text(f.action), "evidence": red.data(f.evidence),
            "group": {k: red.text(v) for k, v in f.group.items()},
        }
        if all(getattr(f, k) == v for k, v in clean.items()):
            return f
        self.counters["redacted_findings"] += 1
        return f.model_copy(update=clean)

    def _load(self, fps: set[str]) -> None:
        missing = [fp for fp in fps if fp not in self._states]
        for st in self.store.load_alert_states(fingerprints=missing):
            self._states[st["fingerprint"]] = st

    def _repeat_ms(self) -> int:
        return int(max(self.cfg.repeat_interval_s, self.cfg.cooldown_s) * 1000)

    def _cooling(self, st: dict[str, Any] | None, now: int) -> bool:
        last = (st or {}).get("last_notified_ts")
        return last is not None and now - last < self.cfg.cooldown_s * 1000


def st_since(group: list[dict[str, Any]], item: AlertItem) -> int:
    return next(s["pending_since"] for s in group if s["fingerprint"] == item.fingerprint)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
