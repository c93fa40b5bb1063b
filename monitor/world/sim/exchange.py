"""One simulated exchange: the books, limits, matching engine, faults and stream hub together.

The REST app, the WebSocket API and the control plane all hold the same `Exchange`, and every
time they read comes from `now_ms()`: the injected clock plus the control plane's skew.
The engine's events fan out to the user-data hub and to the public tape, so every fill an
account makes is also a public trade in /trades, the klines, the tickers and the streams.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.core.clock import Clock
from monitor.world.sim.depthbook import DepthBook
from monitor.world.sim.engine import Engine
from monitor.world.sim.limits import Limits
from monitor.world.sim.state import Books
from monitor.world.sim.streams import StreamHub
from monitor.world.sim.tape import Tape


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
        self.engine = Engine(self.books, self.now_ms, seed, self._emit)
        self.tape = Tape(self.engine.paths, self.books, seed)
        self.depth = {s: DepthBook(t, self.books, seed) for s, t in self.tape.symbols.items()}

    def _emit(self, account: str, event: dict[str, object]) -> None:
        self.hub.publish(account, event)
        self.tape.on_event(event)

    def now_ms(self) -> int:
        return self.clock.now_ms() + self.skew_ms

    def take_rest_fault(self) -> int | None:
        """Status of an injected REST failure for this call, or None."""
        if self.faults.fail_left > 0:
            self.faults.fail_left -= 1
            return self.faults.fail_status
        return None
