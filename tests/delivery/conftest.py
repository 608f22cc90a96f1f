"""One Herald on Tansu for the delivery API suites that are not about the
broker (the dispatcher suites start their own on Apache Kafka)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from adapters.auth.dev_issuer import DevIssuer
from tests.support import Broker, GraphQLClient, RunningHerald, herald_settings


@pytest.fixture(scope="package")
async def herald(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> AsyncIterator[RunningHerald]:
    async with RunningHerald(herald_settings(tansu_broker, mongo_uri, issuer), issuer) as running:
        yield running


@pytest.fixture(scope="package")
async def api(herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with GraphQLClient.of(herald) as client:
        yield client
