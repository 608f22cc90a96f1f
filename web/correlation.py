"""CorrelationIdMiddleware: one id per request, echoed back, on every log line
and trace of the request; the request count and duration per route."""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability import metrics, tracing
from observability.logs import log_context

__all__ = ["STATE_CORRELATION_ID", "CorrelationIdMiddleware"]

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
                # visible ASCII only: it is echoed, logged and stored as given
                if 0 < len(candidate) <= 128 and candidate.isascii() and candidate.isprintable():
                    correlation_id = candidate
                break
        correlation_id = correlation_id or uuid.uuid4().hex
        scope.setdefault("state", {})[STATE_CORRELATION_ID] = correlation_id
        tracing.set_correlation_id(correlation_id)
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
            with log_context(correlation_id=correlation_id):
                await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                route = scope.get("path", "")
                route = route if route in _KNOWN_ROUTES else "other"
                metrics.HTTP_REQUESTS.labels(scope.get("method", ""), route, str(status)).inc()
                metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)


_KNOWN_ROUTES = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})
