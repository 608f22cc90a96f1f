"""The Starlette app factory and the process entry: GraphQL, health, metrics.

`create_app(settings)` wires one Herald process; `uvicorn app:create_app
--factory` or `herald serve` runs it against whatever the environment names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import OperationType
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry import Schema
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from adapters.auth.verifier import InvalidToken, bearer_token
from ide import offline_page
from ide import routes as ide_routes
from observability import metrics, tracing
from observability.probes import Probes
from queries.allowlist import load_allowlist
from queries.context import HeraldContext
from queries.documents import operation_type, read_operation
from queries.extensions import code_leftovers
from queries.schema import PUBLIC_CARD_FIELDS, build_schema
from services import Services
from settings import Settings
from web.auth import AuthenticationMiddleware, principal_from_scope
from web.correlation import STATE_CORRELATION_ID, CorrelationIdMiddleware
from web.http_cache import PublicCacheMiddleware
from web.http_input import (
    check_query_string,
    decode_frame,
    decode_json,
    graphql_request,
    problem_for,
)
from web.idempotency import IdempotencyMiddleware
from web.problems import send_problem

log = logging.getLogger("herald")


class HeraldGraphQL(GraphQL[HeraldContext, None]):
    def __init__(self, services: Services) -> None:
        settings = services.settings
        # A configured allowlist that cannot be read fails the start, naming the file.
        self.allowlist = (
            load_allowlist(settings.persisted_queries) if settings.persisted_queries else None
        )
        super().__init__(
            build_schema(
                production=settings.is_production,
                max_cost=settings.max_query_cost,
                allowlist=self.allowlist,
                traced=tracing.tracing_enabled(),
            ),
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            graphql_ide="graphiql" if not settings.is_production else None,
            allow_queries_via_get=True,
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=10,
        )
        self.services = services
        assert isinstance(self.schema, Schema)
        core = self.schema._schema  # graphql-core's: the root types' field names
        self._root_fields = {
            kind: frozenset(root.fields) if root is not None else frozenset()
            for kind, root in (
                (OperationType.QUERY, core.query_type),
                (OperationType.MUTATION, core.mutation_type),
            )
        }

    @property
    def graphql_ide_html(self) -> str:
        """GraphiQL with its scripts served by this app (ide/), not a CDN."""
        return offline_page(super().graphql_ide_html)

    async def on_ws_connect(self, context: HeraldContext) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws `connection_init`: a token in its payload
        (`{"Authorization": "Bearer …"}` or `{"token": …}`) authenticates the
        socket, verified like a bearer header; a bad one closes it with 4403.
        Without one the socket keeps the handshake's principal (anonymous,
        unless the upgrade request carried an Authorization header)."""
        try:
            token = _connection_token(context.connection_params or {})
            if token is not None:
                if self.services.verifier is None:
                    raise InvalidToken("this server has no token issuer configured")
                context.principal = await self.services.verifier.verify(token)
        except InvalidToken as exc:
            raise ConnectionRejectionError({"reason": exc.reason}) from exc
        unset: UnsetType = UNSET
        return unset

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every HTTP-level refusal answers application/problem+json (RFC 9457)."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            if scope["method"] == "GET":
                check_query_string(scope.get("query_string", b""))
            response = await self.run(Request(scope, receive))
        except HTTPException as exc:
            await send_problem(send, problem_for(exc))
            return
        await response(scope, receive, send)

    def parse_json(self, data: str | bytes) -> Any:
        """The JSON of a body or GET parameter; a 400 problem for what cannot be read."""
        return decode_json(data)

    def decode_json(self, data: str | bytes) -> object:
        """The JSON of a WebSocket frame; one that cannot be read closes the socket (4400)."""
        return decode_frame(data)

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """One GraphQL request, checked at the boundary (web.http_input).
        A persisted query may be sent by its hash alone
        (`extensions.persistedQuery.sha256Hash`) when an allowlist is set."""
        if request.method == "GET":
            raw: object = self.parse_query_params(request.query_params)
        elif "application/json" in parse_content_type(request.content_type or "")[0]:
            raw = self.parse_json(await request.get_body())
        else:
            raise HTTPException(415, "send the GraphQL request as application/json")
        data = graphql_request(raw)
        if self.allowlist and data.query is None:
            persisted = (data.extensions or {}).get("persistedQuery")
            digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
            if isinstance(digest, str) and digest in self.allowlist:
                data.query = self.allowlist[digest]
        return data

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """No error goes out without a code, also one that reached no extension."""
        if result.errors:
            correlation_id = request.scope.get("state", {}).get(STATE_CORRELATION_ID, "")
            result.errors = code_leftovers(result.errors, correlation_id)
        return await super().process_result(request, result)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: HeraldContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Subscriptions are served over the WebSocket only (strawberry would
        run one sent by POST as if it were a query, and fail)."""
        if _selects_subscription(request_data.query, request_data.operation_name):
            raise HTTPException(
                400, "subscriptions are served over WebSocket (graphql-transport-ws) only"
            )
        started, outcome = time.perf_counter(), "error"
        try:
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
            outcome = "error" if result.errors else "ok"
            return result
        finally:
            operation, kind = self._operation_labels(request_data)
            metrics.GRAPHQL_SECONDS.labels(operation, kind, outcome).observe(
                time.perf_counter() - started
            )

    def _operation_labels(self, request_data: GraphQLRequestData) -> tuple[str, str]:
        """(operation, type) of herald_graphql_request_seconds: the one root field
        the schema defines (else "other": a caller must not mint label values)."""
        summary = read_operation(request_data.query or "", request_data.operation_name)
        if summary is None:
            return "other", "unknown"
        fields = summary.root_fields or frozenset()
        known = self._root_fields.get(summary.kind, frozenset())
        operation = next(iter(fields)) if len(fields) == 1 and fields <= known else "other"
        return operation, summary.kind.value

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None
    ) -> HeraldContext:
        return HeraldContext(
            principal=principal_from_scope(request.scope),
            services=self.services,
            correlation_id=request.scope.get("state", {}).get(STATE_CORRELATION_ID, ""),
        )


def _selects_subscription(query: str | None, operation_name: str | None) -> bool:
    if not query:
        return False
    return operation_type(query, operation_name) is OperationType.SUBSCRIPTION


def _connection_token(params: dict[str, Any]) -> str | None:
    """The bearer token of a connection_init payload; None when it has none."""
    for name, value in params.items():
        if name.lower() == "authorization":
            if not isinstance(value, str):
                raise InvalidToken("authorization is not 'Bearer <token>'")
            return bearer_token(value)
    token = params.get("token")
    if token is None:
        return None
    if not isinstance(token, str) or not token:
        raise InvalidToken("token is not a string")
    return token


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    # before Services: PyMongo traces only clients created after instrumenting
    tracing.configure_tracing(settings)
    services = services or Services(settings)
    graphql = HeraldGraphQL(services)

    async def count_pending() -> None:
        pending = await _safe_pending(services)
        if pending is not None:
            metrics.OUTBOX_PENDING.set(pending)

    # /readyz answered from checks run twice a second: a dead store must not make it slow
    probes = Probes(services.ready, lambda: services.progress, before_scrape=count_pending)
    readiness = probes.readiness

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.start()
        await services.start_read_feeds()
        readiness.start()
        log.info(
            "herald started (kafka %s, store %s)", settings.kafka_bootstrap, settings.mongo_database
        )
        try:
            yield
        finally:
            await readiness.stop()
            await services.stop()

    app = Starlette(
        routes=[
            # every method: the view answers any but GET and POST with a 405 problem
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            *probes.routes(),
            *(ide_routes() if not settings.is_production else []),
        ],
        middleware=[
            Middleware(CorrelationIdMiddleware),
            Middleware(AuthenticationMiddleware, verifier=services.verifier),
            # after authentication (it caches anonymous reads only), before the
            # idempotency check (which concerns mutations, never cached)
            Middleware(
                PublicCacheMiddleware,
                watermark=lambda: services.published_cards.watermark,
                public_root_fields=PUBLIC_CARD_FIELDS,
                max_age_seconds=settings.public_cache_max_age_seconds,
                enabled=settings.public_cache,
                max_body_bytes=settings.max_body_bytes,
            ),
            # innermost: it needs the principal to scope keys by caller
            Middleware(
                IdempotencyMiddleware,
                store=services.idempotency,
                stored=services.stored_commands,
                ttl_seconds=settings.idempotency_ttl_seconds,
                lease_seconds=settings.idempotency_lease_seconds,
                max_body_bytes=settings.max_body_bytes,
            ),
        ],
        lifespan=lifespan,
    )
    tracing.instrument_app(app)
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

    from observability.logs import configure_logging

    settings = Settings.from_env()
    if not logging.getLogger().handlers:  # `herald serve --debug` configured it already
        configure_logging(settings.log_format or "json")
    # log_config=None: uvicorn's lines go through Herald's handler (format, redaction)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
