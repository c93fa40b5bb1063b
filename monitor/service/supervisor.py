"""Keeps the service's components alive: a crash is logged, counted and restarted with backoff.

A monitor that silently stops watching is worse than none, so no component may die quietly:
each runs under `_keep_alive`, which restarts it with jittered exponential backoff (capped) and
counts every restart in the metrics. Stopping is cooperative: `stop` is set, components get
`grace_s` to finish their own drain, and only then are they cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monitor.core.clock import Clock
from monitor.service.metrics import Metrics

log = logging.getLogger("keywatch.supervisor")

Factory = Callable[[asyncio.Event], Awaitable[None]]


@dataclass
class ComponentState:
    name: str
    restarts: int = 0
    running: bool = False
    last_error: str | None = None
    started: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(
        self, clock: Clock, metrics: Metrics, *, backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0, rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.metrics = metrics
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self._rng = rng or random.Random()
        self._components: list[tuple[str, Factory]] = []
        self.state: dict[str, ComponentState] = {}

    def add(self, name: str, factory: Factory) -> None:
        """Register `factory(stop)`: a coroutine that runs until `stop` is set, then returns."""
        self._components.append((name, factory))
        self.state[name] = ComponentState(name)

    async def run(self, stop: asyncio.Event, grace_s: float = 8.0) -> None:
        tasks = [
            asyncio.create_task(self._keep_alive(name, f, stop), name=name)
            for name, f in self._components
        ]
        await stop.wait()
        done, pending = await asyncio.wait(tasks, timeout=grace_s)
        for t in pending:
            log.warning("component %s did not stop within %.0f s; cancelling", t.get_name(),
                        grace_s)
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    async def _keep_alive(self, name: str, factory: Factory, stop: asyncio.Event) -> None:
        st = self.state[name]
        failures = 0
        while not stop.is_set():
            st.running = True
            try:
                await factory(stop)
                if stop.is_set():
                    break
                raise RuntimeError("returned while the service was still running")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a component must never die silently
                failures += 1
                st.restarts += 1
                st.last_error = f"{type(exc).__name__}: {exc}"
                self.metrics.component_restarts.labels(name).inc()
                delay = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (failures - 1))
                delay *= 0.5 + self._rng.random()
                log.error("component %s crashed (%s); restart #%d in %.1f s", name,
                          st.last_error, st.restarts, delay, exc_info=exc)
            finally:
                st.running = False
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
