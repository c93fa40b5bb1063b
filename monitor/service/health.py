"""`/healthz` and `/metrics` on a local port, so an operator (or systemd, or Prometheus) can
tell a watching service from one that is merely running."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.collect.serverlimits import HEALTH_LIMITS, server_config
from monitor.service.healthchecks import HealthReport
from monitor.service.metrics import Metrics


def build_app(metrics: Metrics, health: Callable[[], HealthReport],
              refresh: Callable[[], object] | None = None) -> Starlette:
    """`refresh` runs before each scrape: gauges read from state (the outbox backlog) are then
    as of the scrape, not as of the last heartbeat."""

    async def healthz(_: Request) -> JSONResponse:
        report = health()
        return JSONResponse(report, status_code=200 if report.get("ok") else 503)

    async def prometheus(_: Request) -> Response:
        if refresh is not None:
            refresh()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", prometheus)])


class HealthServer:
    """uvicorn in the service's own loop; `port=0` picks a free port (see `.port`)."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = uvicorn.Server(
            server_config(app, host, port, HEALTH_LIMITS, lifespan="off", log_level="warning",
                          access_log=False)
        )
        self.host = host
        self.port = port

    async def run(self, stop: asyncio.Event) -> None:
        task = asyncio.create_task(self._server.serve())
        while not self._server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        await stop.wait()
        self._server.should_exit = True
        await task
