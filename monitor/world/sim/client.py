"""A small signed Binance REST client for scenario actors, bound to its own source address.

Actors are real HTTP clients: each binds its socket to a loopback address (127.0.0.2 for the
home bot, 127.66.x.y for attackers), so the simulator and any tap see a real peer IP.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from monitor.core.clock import Clock
from monitor.world.sim.auth import hmac_hex


class ActorClient:
    def __init__(self, base_url: str, ip: str, api_key: str, secret: str, clock: Clock,
                 timeout: float = 10.0) -> None:
        self.base_url, self.ip = base_url, ip
        self.api_key, self._secret = api_key, secret
        self.clock, self.timeout = clock, timeout
        self._http = self._make()

    def _make(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(local_address=self.ip)
        return httpx.AsyncClient(transport=transport, base_url=self.base_url,
                                 timeout=self.timeout)

    def __repr__(self) -> str:  # never show the secret
        return f"ActorClient(ip={self.ip!r}, base_url={self.base_url!r})"

    async def rebind(self, ip: str) -> None:
        """The host's address changed: later calls leave from `ip`."""
        await self._http.aclose()
        self.ip = ip
        self._http = self._make()

    async def public(self, method: str, path: str,
                     params: dict[str, Any] | None = None) -> httpx.Response:
        return await self._http.request(method, path, params=params)

    async def signed(self, method: str, path: str, params: dict[str, object] | None = None, *,
                     stale_ms: int = 0, api_key: str | None = None,
                     corrupt: bool = False) -> httpx.Response:
        """Sign `params` + timestamp over the exact query string; `stale_ms` backdates it."""
        query = dict(params or {})
        query["timestamp"] = self.clock.now_ms() - stale_ms
        text = urlencode(query)
        sig = hmac_hex(self._secret, text + ("x" if corrupt else ""))
        url = f"{path}?{text}&signature={sig}"
        headers = {"X-MBX-APIKEY": api_key if api_key is not None else self.api_key}
        return await self._http.request(method, url, headers=headers)

    async def aclose(self) -> None:
        await self._http.aclose()
