"""Wallet and margin /sapi calls stock clients make at start-up (coin config, margin pairs,
trade fees)."""

from __future__ import annotations

from monitor.sim.endpoint import Endpoint

ENDPOINTS: list[Endpoint] = []
