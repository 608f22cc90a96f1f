"""One Herald on Tansu for the API suites (nothing here is about the broker),
and a graphql-transport-ws client over a real WebSocket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.auth.dev_issuer import DevIssuer
from devstack.tansu import TansuBroker
from tests.support import Broker, GraphQLClient, RunningHerald, herald_settings


@pytest.fixture(scope="package")
async def herald(
    tansu: TansuBroker, mongo_uri: str, issuer: DevIssuer
) -> AsyncIterator[RunningHerald]:
    broker = Broker("tansu", tansu.bootstrap_servers, idempotent=False)
    async with RunningHerald(herald_settings(broker, mongo_uri, issuer), issuer) as running:
        yield running


@pytest.fixture(scope="package")
async def api(herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=herald.base_url, timeout=30) as http:
        yield GraphQLClient(http, herald.issuer)
