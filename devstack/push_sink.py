"""A small real push gateway on loopback (Starlette on uvicorn) that records
every call; `answer` decides the status per call (200 unless told). The
tests' and the delivery benchmark's push peer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devstack.process import free_port


@dataclass
class PushCall:
    at: float
    idempotency_key: str
    body: dict[str, Any]
    status: int


@dataclass
class PushServer:
    port: int = field(default_factory=free_port)
    calls: list[PushCall] = field(default_factory=list)
    answer: Callable[[dict[str, Any]], int] = lambda body: 200
    # How long each call takes (a slow gateway keeps deliveries in flight).
    delay_seconds: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/push"

    def accepted(self) -> list[PushCall]:
        return [c for c in self.calls if 200 <= c.status < 300]

    async def _push(self, request: Request) -> JSONResponse:
        body = await request.json()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        status = self.answer(body)
        self.calls.append(
            PushCall(time.time(), request.headers.get("idempotency-key", ""), body, status)
        )
        return JSONResponse({"status": status}, status_code=status)

    async def __aenter__(self) -> PushServer:
        app = Starlette(routes=[Route("/push", self._push, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:  # noqa: ASYNC110 (uvicorn exposes a flag, no event)
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 10)
