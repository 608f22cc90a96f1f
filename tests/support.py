"""Helpers the suites share: a live Herald on real components, a GraphQL client."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from adapters.auth.dev_issuer import DevIssuer
from app import create_app
from devstack.process import free_port
from services import Services
from settings import Settings

REPO = Path(__file__).resolve().parents[1]
CONTRACT = Path(os.environ.get("HERALD_CONTRACT_DIR", REPO.parent / "shared" / "contract"))
OPERATIONS = CONTRACT / "operations"


def operation_document(client: str) -> str:
    """The contract's operations file of one client (website, mobile, portal)."""
    return (OPERATIONS / f"{client}.graphql").read_text()


@dataclass(frozen=True)
class Broker:
    name: str
    bootstrap: str
    idempotent: bool


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, issuer: DevIssuer) -> None:
        self.http = http
        self.issuer = issuer

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
                self.app, host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on"
            )
        )
        self._task: asyncio.Task[None] | None = None

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

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


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
