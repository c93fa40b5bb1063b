"""Deliver what the outbox holds through Apprise, per channel, at least once.

The manager writes each alert and one pending delivery per channel to the store before any
send. This sender only reads due deliveries, sends each through a fresh Apprise object for its
channel (`await Apprise.async_notify`), and records the outcome per channel. So:

- a process killed mid-send leaves the delivery pending and the next start sends it again
  (at least once; the alert id in the message lets a person spot the repeat), while the store
  records one `sent` per (alert, channel);
- a failing channel backs off with jittered exponential delays and never blocks the others
  (channels are sent concurrently, one after another within a channel to keep order);
- nothing is given up by default: an hour-long outage ends with every alert delivered.

The sender polls the outbox every `poll_s`, and `wake()` starts a pass at once: the service calls
it right after the manager queued an alert, so a page does not wait out the poll interval. A
wake only shortens the idle wait; the outbox stays the one source of what to send, so the
guarantees above do not depend on it (a lost wake costs at most one poll interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from monitor.alert.channels import Channel, apprise, load_channels, prepare
from monitor.alert.redact import Redactor
from monitor.alert.render import render_test
from monitor.config import AlertsConfig
from monitor.core.clock import Clock
from monitor.store import Delivery, Store

log = logging.getLogger(__name__)

NOTIFY_TYPE = {
    "critical": apprise.NotifyType.FAILURE,
    "high": apprise.NotifyType.FAILURE,
    "warning": apprise.NotifyType.WARNING,
    "info": apprise.NotifyType.INFO,
}


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: base * 2**(attempt-1), capped, times U(0.5, 1)."""

    base_s: float = 5.0
    cap_s: float = 300.0

    def delay(self, attempts: int, rng: random.Random) -> float:
        raw = min(self.cap_s, self.base_s * 2 ** max(0, attempts - 1))
        return raw * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class SendResult:
    channel: str
    ok: bool
    error: str | None = None


class Notifier:
    """Sends due outbox deliveries; `run` loops until stopped, then makes a final pass."""

    def __init__(
        self, store: Store, clock: Clock, cfg: AlertsConfig, *, secrets: Iterable[str] = (),
        channels: list[Channel] | None = None, backoff: Backoff | None = None,
        poll_s: float = 1.0, timeout_s: float = 30.0, give_up_after: int | None = None,
        rng: random.Random | None = None,
        on_attempt: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.cfg = cfg
        self.channels = {c.name: c for c in (load_channels(cfg) if channels is None else channels)}
        self.redactor = Redactor(secrets)
        self.backoff = backoff or Backoff()
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.give_up_after = give_up_after
        self.rng = rng or random.Random()
        # (channel, delivered) after each recorded outbox attempt: the service's metrics
        self.on_attempt = on_attempt or (lambda _channel, _ok: None)
        self.counters: dict[str, int] = defaultdict(int)
        self._not_before: dict[str, int] = {}  # per channel, after a failure
        self._wake: asyncio.Event | None = None  # made in `run`, on the loop that waits on it
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Start a pass now instead of at the next poll (safe from any thread, or before `run`).

        Before `run` starts there is nothing to wake: its first pass reads the outbox anyway.
        """
        wake, loop = self._wake, self._loop
        if wake is None or loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            wake.set()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing waits
            loop.call_soon_threadsafe(wake.set)

    async def send_due(self) -> int:
        """One pass over due deliveries; returns how many were delivered."""
        now = self.clock.now_ms()
        by_channel: dict[str, list[Delivery]] = defaultdict(list)
        for d in self.store.due_deliveries(now, limit=500):
            if self._not_before.get(d.channel, 0) <= now:
                by_channel[d.channel].append(d)
        sent = await asyncio.gather(*(self._channel(ch, ds) for ch, ds in by_channel.items()))
        return sum(sent)

    def check_channels(self) -> list[str]:
        """Build every channel once before the first alert; the problems, one line each.

        Apprise loads its plugins on the first URL it parses (about 14 MiB and a few hundred
        ms here): paid at start, the first page neither waits for it nor shows as a memory
        step in the middle of a day; and a URL Apprise refuses is reported now, by name, not
        at the first incident. A refused channel is logged and still tried at each send (the
        outbox keeps its alerts), so a later fix of an Apprise config file needs no restart.
        """
        problems = []
        for ch in self.channels.values():
            try:
                ch.build()
            except Exception as exc:
                problems.append(self.redactor.text(f"alert channel {ch.name}: {exc}")[:300])
        for p in problems:
            log.error("%s", p)
        return problems

    async def run(self, stop: asyncio.Event) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self.check_channels()
        wake = self._wake
        while not stop.is_set():
            wake.clear()  # before the pass: an alert queued during it wakes the next one
            try:
                await self.send_due()
            except Exception:  # a store hiccup must not end alerting; it is logged and retried
                log.exception("alert sender pass failed; retrying")
            waits = [asyncio.ensure_future(self.clock.sleep(self.poll_s)),
                     asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in waits:
                    t.cancel()
        await self.send_due()

    async def _channel(self, name: str, deliveries: list[Delivery]) -> int:
        channel = self.channels.get(name)
        sent = 0
        for d in deliveries:
            if channel is None:
                self.store.record_attempt(
                    d.alert_id, name, False, self.clock.now_ms(),
                    error=f"channel {name!r} is no longer configured", give_up=True,
                )
                self.on_attempt(name, False)
                log.error("alert %s: channel %r is not configured any more; marked failed",
                          d.alert_id, name)
                continue
            alert = self.store.load_alert(d.alert_id)
            if alert is None:  # cannot happen with the outbox's foreign key; be explicit
                continue
            result = await self._send(channel, alert.title, alert.body, alert.payload.markdown,
                                      alert.severity)
            now = self.clock.now_ms()
            if result.ok:
                self.store.record_attempt(d.alert_id, name, True, now)
                self.counters["sent"] += 1
                self.on_attempt(name, True)
                sent += 1
                log.info("alert %s delivered to %s (attempt %d)", d.alert_id, name,
                         d.attempts + 1)
                continue
            attempts = d.attempts + 1
            give_up = self.give_up_after is not None and attempts >= self.give_up_after
            retry_at = now + int(self.backoff.delay(attempts, self.rng) * 1000)
            self.store.record_attempt(d.alert_id, name, False, now, next_try_ts=retry_at,
                                      error=result.error, give_up=give_up)
            self._not_before[name] = retry_at
            self.counters["failed_attempts"] += 1
            self.on_attempt(name, False)
            log.warning("alert %s to %s failed (attempt %d): %s; %s", d.alert_id, name, attempts,
                        result.error, "giving up" if give_up else f"retry in "
                        f"{(retry_at - now) / 1000:.1f}s")
            break  # the rest of this channel waits for the backoff; other channels go on
        return sent

    async def _send(
        self, channel: Channel, title: str, text: str, markdown: str | None, severity: str
    ) -> SendResult:
        """One Apprise call to one channel; every error becomes a redacted string."""
        try:
            ap = channel.build()
            title, body, fmt = prepare(ap, title, text, markdown)  # within the channel's limit
            result = await asyncio.wait_for(
                ap.async_notify(
                    body=body, title=title, body_format=fmt,
                    notify_type=NOTIFY_TYPE.get(severity, apprise.NotifyType.INFO),
                ),
                timeout=self.timeout_s,
            )
        except TimeoutError:
            return SendResult(channel.name, False, f"no answer within {self.timeout_s:.0f}s")
        except Exception as exc:  # Apprise or a plugin raised: report it, never crash the loop
            return SendResult(channel.name, False, self.redactor.text(
                f"{type(exc).__name__}: {exc}")[:300])
        if bool(result):
            return SendResult(channel.name, True)
        return SendResult(channel.name, False, self._why(result))

    def _why(self, result: object) -> str:
        lines: list[str] = []
        try:
            for entry in result.logs():  # type: ignore[attr-defined]
                lines.append(str(getattr(entry, "message", entry)))
        except Exception:  # older Apprise result objects have no logs
            pass
        why = "; ".join(lines[-2:]) or f"Apprise reported {getattr(result, 'status', 'failure')}"
        return self.redactor.text(why)[:300]

    async def send_test(self) -> list[SendResult]:
        """A test message to every configured channel, outside the outbox; one result each."""
        now = self.clock.now_ms()

        async def one(ch: Channel) -> SendResult:
            r = render_test(ch.name, now)
            return await self._send(ch, r.title, r.text, r.markdown, "info")

        return list(await asyncio.gather(*(one(c) for c in self.channels.values())))
