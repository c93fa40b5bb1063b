"""One simulated exchange: the books, limits, matching engine, faults and stream hub together.

The REST app, the WebSocket API and the control plane all hold the same `Exchange`, and every
time they read comes from `now_ms()`: the injected clock plus the control plane's skew.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.clock import Clock
from monitor.sim.engine import Engine
from monitor.sim.limits import Limits
from monitor.sim.state import Books
from monitor.sim.streams import StreamHub


@dataclass
class Faults:
    fail_status: int = 503
    fail_left: int = 0
    delay_ms: int = 0


class Exchange:
    def __init__(self, clock: Clock, seed: int = 0) -> None:
        self.clock = clock
        self.seed = seed
        self.skew_ms = 0
        self.books = Books()
        self.limits = Limits()
        self.faults = Faults()
        self.hub = StreamHub(self.now_ms)
        self.engine = Engine(self.books, self.now_ms, seed, self.hub.publish)

    def now_ms(self) -> int:
        return self.clock.now_ms() + self.skew_ms

    def take_rest_fault(self) -> int | None:
        """Status of an injected REST failure for this call, or None."""
        if self.faults.fail_left > 0:
            self.faults.fail_left -= 1
            return self.faults.fail_status
        return None
