"""Trading endpoints beyond place/query/cancel: order/test, cancel-all, cancel-replace,
order lists (OCO, OTO, OTOCO) and the account's commission rates."""

from __future__ import annotations

from monitor.sim.endpoint import Endpoint

ENDPOINTS: list[Endpoint] = []
