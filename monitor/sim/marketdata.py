"""Public market data (/api/v3 ticker, depth, klines, trades ...): security NONE."""

from __future__ import annotations

from monitor.sim.endpoint import Endpoint

ENDPOINTS: list[Endpoint] = []
