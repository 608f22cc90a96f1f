"""The Starlette app factory and the process entry: GraphQL, health, metrics.

`create_app(settings)` wires one Herald process; `uvicorn app:create_app
--factory` or `herald serve` runs it against whatever the environment names.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from commands.idempotency import IdempotencyMiddleware
from observability import metrics
from queries.auth import AuthenticationMiddleware, principal_from_scope
from queries.context import HeraldContext
from queries.schema import build_schema
from services import Services
from settings import Settings

log = logging.getLogger("herald")

STATE_CORRELATION_ID = "correlation_id"


class CorrelationIdMiddleware:
    """Take the caller's X-Correlation-Id (or make one) and echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        correlation_id = ""
        for name, value in scope.get("headers", []):
            if name in (b"x-correlation-id", b"x-request-id"):
                candidate = value.decode("latin-1")
                if 0 < len(candidate) <= 128 and candidate.isprintable():
                    correlation_id = candidate
                break
        correlation_id = correlation_id or uuid.uuid4().hex
        scope.setdefault("state", {})[STATE_CORRELATION_ID] = correlation_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-correlation-id", correlation_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                route = scope.get("path", "")
                route = route if route in _KNOWN_ROUTES else "other"
                metrics.HTTP_REQUESTS.labels(scope.get("method", ""), route, str(status)).inc()
                metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)


_KNOWN_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})


class HeraldGraphQL(GraphQL[HeraldContext, None]):
    def __init__(self, services: Services) -> None:
        super().__init__(
            build_schema(),
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            graphql_ide="graphiql" if not services.settings.is_production else None,
            allow_queries_via_get=True,
        )
        self.services = services

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> HeraldContext:
        return HeraldContext(
            principal=principal_from_scope(request.scope),
            services=self.services,
            correlation_id=request.scope.get("state", {}).get(STATE_CORRELATION_ID, ""),
        )


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    services = services or Services(settings)
    graphql = HeraldGraphQL(services)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = await services.ready()
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def prometheus(request: Request) -> Response:
        pending = await _safe_pending(services)
        if pending is not None:
            metrics.OUTBOX_PENDING.set(pending)
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        log.info(
            "herald started (kafka %s, store %s)", settings.kafka_bootstrap, settings.mongo_database
        )
        try:
            yield
        finally:
            await services.stop()

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
        ],
        middleware=[
            Middleware(CorrelationIdMiddleware),
            Middleware(AuthenticationMiddleware, verifier=services.verifier),
            # innermost of the three: it needs the principal to scope keys by caller
            Middleware(
                IdempotencyMiddleware,
                store=services.idempotency,
                ttl_seconds=settings.idempotency_ttl_seconds,
                lease_seconds=settings.idempotency_lease_seconds,
            ),
        ],
        lifespan=lifespan,
    )
    app.state.services = services
    return app


async def _safe_pending(services: Services) -> int | None:
    try:
        return await services.events.unpublished_count()
    except Exception:
        return None


def main(argv: Any = None) -> None:
    """`python app.py` serves on the configured host and port."""
    import uvicorn

    settings = Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
