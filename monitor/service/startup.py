"""The service's start-up: its log line (what listens where and which channels alerts go to)
and the detection state rebuilt from the store before the sources start (`warm_up`).

An operator reading the journal after a restart should learn, from one line, whether the tap
is up and on which address the bots must call it, where /healthz and /metrics are served, and
which alert channels are configured. Channels are named with their Apprise service only (the
URL scheme), never with their URL: the URL holds the token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from monitor.alert.channels import Channel
from monitor.config import Config
from monitor.core.clock import DAY_MS, HOUR_MS, MINUTE_MS
from monitor.store import Store, events_from_frame
from monitor.store.base import BaselineRow


class Listener(Protocol):
    host: str
    port: int


log = logging.getLogger(__name__)


def channel_names(channels: Iterable[Channel]) -> list[str]:
    """'name (service)' per channel: the Apprise scheme, or the service of a config entry."""
    out = []
    for ch in channels:
        service = ch.service if ch.service not in ("", "url") else ""
        if ch.url is not None:
            scheme = ch.url.get_secret_value().split("://", 1)[0]
            service = scheme if scheme.isalnum() else "?"  # never a fragment of the URL
        out.append(f"{ch.name} ({service})" if service else ch.name)
    return out


def startup_line(cfg: Config, health: Listener | None, channels: Iterable[Channel]) -> str:
    accounts = ", ".join(a.name for a in cfg.accounts)
    tap = cfg.sources.tap
    mode = str(getattr(getattr(tap, "mode", None), "value", "inprocess"))
    if not tap.enabled:
        tap_text = "tap off"
    elif mode == "process":
        tap_text = (f"tap runs as `keywatch tap` on {tap.listen}; reading its spool "
                    f"{getattr(tap, 'spool', None)}")
    else:
        tap_text = f"tap listening on http://{tap.listen} (forwarding to {tap.upstream})"
    if health is None:
        health_text = "health and metrics off (--health-port to serve them)"
    else:
        where = (f"{health.host}:{health.port}" if health.port else
                 f"{health.host}, a free port chosen at start")
        health_text = f"health and metrics on http://{where} (/healthz, /metrics)"
    names = channel_names(channels)
    chan_text = (f"alert channels: {', '.join(names)}" if names else
                 "alert channels: none configured (findings are stored, not sent)")
    return (f"keywatch service started: {len(cfg.accounts)} account(s) ({accounts}); "
            f"{tap_text}; {health_text}; {chan_text}")


# How far back a restart rebuilds detection state from the store, and at most how many events:
# two days, so a key seen before its learning day (`learn_minutes`, a day) is known to be past
# it, and every hour-long baseline; a week of `rate_shift` memory does not fit (it re-learns
# the rest). A busier store is cut to its most recent WARMUP_MAX_EVENTS, which bounds the
# start-up's time (about a second) and memory (the events are one frame while replayed).
WARMUP_MS = 2 * DAY_MS
WARMUP_MAX_EVENTS = 200_000


def warm_up(engine: object, store: Store, now_ms: int) -> int:
    """Replay the stored events of the last day into a fresh engine before the sources start
    (a restart must not begin every key's learning day again: an attacker's address would be
    only "learned" then). Engines without state (test stand-ins) are left alone."""
    warm = getattr(engine, "warm_up", None)
    if warm is None:
        return 0
    cut = now_ms // MINUTE_MS * MINUTE_MS
    before = store.load_events(since=now_ms - WARMUP_MS, until=cut)
    if len(before) > WARMUP_MAX_EVENTS:
        before = before.iloc[-WARMUP_MAX_EVENTS:].reset_index(drop=True)
    current = events_from_frame(store.load_events(since=cut))
    n = int(warm(before, current))
    if n:
        log.info("detection state rebuilt from %d stored events of the last %d h", n,
                 WARMUP_MS // HOUR_MS)
    return n


# The detectors with memory (`rate_memory`) learn a week; the two days `warm_up` replays would
# cut that short, so their state is saved to the store every SAVE_EVERY_MS and at stop, and
# restored after the warm-up (it replaces what the replay learned for the keys it holds; the
# minutes between the last save and the stop are not in it).
SAVE_EVERY_MS = 5 * MINUTE_MS


def _memories(engine: object) -> list[Any]:
    return [d for d in getattr(engine, "detectors", []) if hasattr(d, "snapshot")]


def save_memory(engine: object, store: Store, now_ms: int) -> int:
    """Write every detector's learned state to the store (replacing the last save); returns
    the rows written. Call it between engine calls (the engine is not thread-safe)."""
    rows = [BaselineRow(r.rule_id, r.account, r.key, r.part, r.values)
            for d in _memories(engine) for r in d.snapshot()]
    store.save_baselines(rows, now_ms)
    return len(rows)


def restore_memory(engine: object, store: Store) -> int:
    """Give each detector with memory the state the store kept; returns the keys restored."""
    from monitor.detect.ratememory import MemoryRow

    dets = _memories(engine)
    if not dets:
        return 0
    rows = [MemoryRow(r.rule_id, r.account, r.key, r.part, r.values)
            for r in store.load_baselines()]
    n = sum(int(d.restore(rows)) for d in dets)
    if n:
        log.info("learned rates restored for %d key(s) from the store", n)
    return n
