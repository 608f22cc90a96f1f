"""/healthz, /readyz and /metrics of one Herald process — the API's routes,
and the small server `herald worker` runs beside its projectors.

- `/healthz`: 200 `{"status": "ok"}` while the process runs;
- `/readyz`: 200 `{"status": "ready", "checks": {...}}`, or 503 with
  `"not ready"` (and `"progress"` while catching up), from checks run twice a
  second in the background (observability.readiness); each check is true,
  false, or `"timeout"` when it gave no answer in time;
- `/metrics`: the process's Prometheus registry (text format 0.0.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from observability.readiness import CachedReadiness, Checks, passed

__all__ = ["ProbeServer", "Probes"]


class Probes:
    """The three routes over `checks` (what /readyz reports: one round,
    filling the answers it is given, see CachedReadiness), `progress` (a
    line while catching up, else None) and `before_scrape` (refreshes gauges
    measured on demand)."""

    def __init__(
        self,
        checks: Callable[[Checks], Awaitable[Checks]],
        progress: Callable[[], str | None],
        before_scrape: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.readiness = CachedReadiness(checks)
        self._progress = progress
        self._before_scrape = before_scrape

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks = await self.readiness.current()
        ok = passed(checks)
        progress = None if ok else self._progress()
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}
            | ({} if progress is None else {"progress": progress}),
            status_code=200 if ok else 503,
        )

    async def metrics(self, request: Request) -> Response:
        if self._before_scrape is not None:
            await self._before_scrape()
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
            Route("/metrics", self.metrics),
        ]


class _BesideServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals alone: the command
    it runs beside decides what Ctrl-C and SIGTERM do."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ProbeServer:
    """The probes on their own port (`herald worker --metrics-port`), served by
    uvicorn in the caller's event loop; `start` returns once it listens."""

    def __init__(self, probes: Probes, host: str, port: int) -> None:
        self.probes = probes

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            probes.readiness.start()
            try:
                yield
            finally:
                await probes.readiness.stop()

        app = Starlette(routes=probes.routes(), lifespan=lifespan)
        # log_config=None: its few lines through Herald's handler; no line per scrape
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
        self._server = _BesideServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen; OSError (not uvicorn's SystemExit) when the port is taken."""
        config = self._server.config
        family = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.create_server((config.host, config.port), family=family)
        self._task = asyncio.create_task(self._server.serve([listening]), name="probes")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # what stopped it
                raise OSError(f"the probe server on port {config.port} did not start")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
