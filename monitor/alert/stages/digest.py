"""The digest stage: once a day, every warning and info finding since the last cut, one alert.

Its cursor (`alert.digest.cut`) makes a restart neither skip nor repeat a day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.alert.channels import Channel, digest_channels
from monitor.alert.redact import Redactor
from monitor.alert.render import fingerprint, make_alert_id, render_digest
from monitor.alert.stages.intake import immediate
from monitor.alert.stages.silence import Silence
from monitor.config import AlertsConfig
from monitor.core.findings import Finding
from monitor.store import AlertPayload, Store

log = logging.getLogger("monitor.alert.manager")
DAY_MS = 86_400_000
DIGEST_CURSOR = "alert.digest.cut"


@dataclass
class _Row:
    finding: Finding  # the latest
    count: int
    first: int
    last: int


class Digest:
    def __init__(self, store: Store, cfg: AlertsConfig, channels: list[Channel],
                 redactor: Redactor, silence: Silence) -> None:
        self.store = store
        self.cfg = cfg
        self.channels = channels
        self.redactor = redactor
        self.silence = silence

    def cut(self, now: int) -> int:
        """The latest digest time at or before `now`."""
        cut = now - now % DAY_MS + self.cfg.digest_hour_utc * 3_600_000
        return cut - DAY_MS if cut > now else cut

    def run(self, now: int) -> str | None:
        """Queue the digest if one is due; return its id (None if none was due or empty)."""
        cut = self.cut(now)
        last_raw = self.store.get_cursor(DIGEST_CURSOR)
        last = int(last_raw) if last_raw is not None else None
        if last is not None and last >= cut:
            return None
        since = last if last is not None else cut - DAY_MS
        silences = self.silence.active(None)
        rows: dict[str, _Row] = {}
        for f in self.store.load_findings(since, cut):
            if immediate(f) or f.state != "firing" or not self.silence.keep([f], silences, f.ts):
                continue
            fp = fingerprint(f)
            row = rows.setdefault(fp, _Row(f, 0, f.ts, f.ts))
            row.finding, row.count, row.last = f, row.count + 1, max(row.last, f.ts)
        alert_id = None
        if rows:
            alert_id = make_alert_id("digest", cut)
            day = _day(cut)
            r = render_digest(alert_id, day, [(v.finding, v.count, v.first, v.last)
                                              for v in rows.values()], self.redactor)
            sev = max((v.finding.severity for v in rows.values()), key=lambda s: s.rank)
            self.store.enqueue_alert(
                alert_id, "digest", now, sev.value, "*", None, "digest", r.title, r.text,
                AlertPayload(markdown=r.markdown, fingerprints=tuple(sorted(rows)), day=day),
                digest_channels(self.channels, self.cfg),
            )
            log.info("digest %s queued: %d finding group(s)", alert_id, len(rows))
        self.store.set_cursor(DIGEST_CURSOR, str(cut))
        return alert_id


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")
