"""RunningHerald: one whole Herald process (API, relay, projectors) served by
uvicorn inside the caller's event loop — for tests and benchmarks."""

from __future__ import annotations

import asyncio
import logging

import httpx
import uvicorn

from adapters.auth.dev_issuer import DevIssuer
from app import create_app
from services import Services
from settings import Settings

log = logging.getLogger(__name__)


class RunningHerald:
    """One Herald process (API + relay + projectors) in this event loop."""

    def __init__(self, settings: Settings, issuer: DevIssuer) -> None:
        self.settings = settings
        self.issuer = issuer
        self.services = Services(settings)
        self.app = create_app(settings, self.services)
        self.base_url = f"http://127.0.0.1:{settings.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=settings.port,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningHerald:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def behind(self) -> int:
        """Events the relay has not published plus events the projectors have
        not consumed: 0 once everything written so far is in the read models."""
        pending = await self.services.events.unpublished_count()
        for runner in self.services.runners:
            progress = await runner.lag()
            if progress is None:  # the broker does not answer: not settled
                return pending + 1
            pending += progress[1]
        return pending

    async def start(self, timeout: float = 60.0) -> None:
        self._task = asyncio.create_task(self._server.serve())
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5) as http:
            while True:
                if self._task.done():
                    self._task.result()
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError("herald not ready: " + (await http.get("/readyz")).text)
                await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 30.0) -> None:
        """Shut down like SIGTERM would; past `timeout`, cancel the server outright
        so a stuck shutdown fails loudly elsewhere instead of hanging the caller."""
        self._server.should_exit = True
        if self._task is None:
            return
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        if not done:
            log.error("herald did not shut down within %ss; cancelling it", timeout)
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
