"""Helpers the suites share: a live Herald on real components, a GraphQL client."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from graphql import DocumentNode, OperationDefinitionNode, OperationType, parse, print_ast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.auth.dev_issuer import DevIssuer
from devstack.herald import RunningHerald
from devstack.process import free_port
from devstack.workers import worker_env as worker_env  # shared with bench/
from domain.consistency import PROJECTION_STREAMS
from settings import Settings

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
# the `herald` command of this virtualenv, for tests that run it as a process
HERALD = Path(sys.executable).with_name("herald")
# The clients' contract: the project's own copy, inside the repository.
CONTRACT = REPO / "contract"
OPERATIONS = CONTRACT / "operations"


# A cash dividend every suite announces (override the reference per test).
DIVIDEND: dict[str, Any] = {
    "reference": "RU-DVCA-2026-0001",
    "eventType": "DVCA",
    "mandatoryVoluntary": "MAND",
    "isin": "RU0009029540",
    "securityName": "Sberbank ordinary shares",
    "announcementDate": "2026-11-20",
    "exDate": "2026-12-14",
    "recordDate": "2026-12-15",
    "paymentDate": "2026-12-29",
    "grossRate": {"amount": "33.3", "currency": "RUB"},
}


def operation_document(client: str, *, without_subscriptions: bool = False) -> str:
    """The contract's operations file of one client (website, mobile, portal).

    `without_subscriptions` drops subscription operations, so a document can be
    POSTed to an HTTP endpoint that does not serve them.
    """
    document = (OPERATIONS / f"{client}.graphql").read_text()
    if not without_subscriptions:
        return document
    parsed = parse(document)
    kept = tuple(
        d
        for d in parsed.definitions
        if not (
            isinstance(d, OperationDefinitionNode) and d.operation == OperationType.SUBSCRIPTION
        )
    )
    return print_ast(DocumentNode(definitions=kept))


@dataclass(frozen=True)
class Broker:
    name: str
    bootstrap: str
    idempotent: bool
    # Tansu answers a first JoinGroup after half the session timeout (see
    # devstack/tansu.py); Apache Kafka refuses sessions under 6 s.
    session_timeout_ms: int = 6000


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, issuer: DevIssuer) -> None:
        self.http = http
        self.issuer = issuer

    @classmethod
    @asynccontextmanager
    async def of(cls, herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
        """A client of `herald` over real HTTP, with its issuer's tokens."""
        async with httpx.AsyncClient(base_url=herald.base_url, timeout=30) as http:
            yield cls(http, herald.issuer)

    def token(
        self, sub: str, *roles: str, accounts: tuple[str, ...] = (), scopes: tuple[str, ...] = ()
    ) -> str:
        return self.issuer.mint(sub, roles=roles, accounts=accounts, scopes=scopes)

    async def post(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        operation_name: str | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
        body: dict[str, Any] = {"query": query, "variables": dict(variables or {})}
        if operation_name:
            body["operationName"] = operation_name
        return await self.http.post("/graphql", json=body, headers=headers)

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """POST and return the JSON body, asserting HTTP 200."""
        response = await self.post(query, variables, token=token, operation_name=operation_name)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def data(
        self, query: str, variables: Mapping[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        """Execute and return `data`, asserting there were no errors."""
        result = await self.execute(query, variables, **kw)
        assert not result.get("errors"), result["errors"]
        data: dict[str, Any] = result["data"]
        return data


def herald_settings(
    broker: Broker, mongo_uri: str, issuer: DevIssuer, **overrides: Any
) -> Settings:
    """Settings isolated per test: own database, topics and consumer groups."""
    unique = uuid.uuid4().hex[:10]
    base = Settings(
        port=free_port(),
        kafka_bootstrap=broker.bootstrap,
        kafka_idempotent_producer=broker.idempotent,
        kafka_topic_prefix=f"t{unique}",
        kafka_partitions=3,
        kafka_session_timeout_ms=broker.session_timeout_ms,
        mongo_uri=mongo_uri,
        mongo_database=f"herald_{unique}",
        jwks_location=str(issuer.jwks_path),
        jwt_issuer=issuer.issuer,
        jwt_audience=issuer.audience,
        relay_poll_seconds=0.05,
        consistency_wait_seconds=10.0,
        projector_group_prefix=f"g{unique}",
    )
    return base.with_overrides(**overrides)


__all__ = ["Broker", "GraphQLClient", "RunningHerald", "herald_settings", "operation_document"]


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout: float = 60.0
) -> T:
    """Poll `probe` until `check` holds (projections are eventually consistent)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.05)


async def checkpoints_at_end(herald: RunningHerald) -> None:
    """Wait until every projection's applied-through checkpoint stands at the
    record's end as it is now."""
    services = herald.services
    end = await services.events.last_sequence()
    for projection in PROJECTION_STREAMS:
        await eventually(
            lambda p=projection: services.projection_state.applied_through(p),  # type: ignore[misc]
            lambda through: through >= end,
        )


def drawn(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """`count` examples hypothesis draws from `strategy`, for an async test to
    play against live services (hypothesis' own runner is synchronous)."""
    found: list[T] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(strategy)
    def collect(example: T) -> None:
        found.append(example)

    collect()
    return found
