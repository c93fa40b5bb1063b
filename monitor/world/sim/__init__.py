"""The Binance simulator and scenario engine: the world the demo, tests and benchmarks run in.

`Simulator` serves Binance's real wire format (binance-wire.md) on loopback; `Control` is its
operator-only control plane; scenarios script normal bots and labelled attackers against it and
write the ground truth of what was injected.
"""

from __future__ import annotations

from monitor.world.sim.control import Control, KeyInfo
from monitor.world.sim.runner import prepare, run_scenario
from monitor.world.sim.scenario import Scenario, list_scenarios, load_scenario
from monitor.world.sim.server import Simulator, SimulatorThread

__all__ = ["Control", "KeyInfo", "Scenario", "Simulator", "SimulatorThread", "list_scenarios",
           "load_scenario", "prepare", "run_scenario"]
