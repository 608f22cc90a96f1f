"""One Herald on Tansu for the observability suites (nothing here is about the
broker), with tracing on and an in-memory span exporter attached.

OpenTelemetry allows one tracer provider per process: once this package has
configured tracing it stays configured for the rest of the test session (the
in-memory exporter is shut down at the end, so it stops keeping spans).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.auth.dev_issuer import DevIssuer
from observability.tracing import configure_tracing
from settings import Settings
from tests.support import Broker, GraphQLClient, RunningHerald, herald_settings

ANNOUNCE = """
mutation Announce($input: AnnounceCorporateActionInput!) {
  announceCorporateAction(input: $input) {
    corporateAction { id version status }
    consistencyToken
  }
}
"""


@pytest.fixture(scope="package")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert configure_tracing(Settings(), exporter=exporter)
    yield exporter
    exporter.shutdown()


@pytest.fixture(scope="package")
async def herald(
    spans: InMemorySpanExporter, tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> AsyncIterator[RunningHerald]:
    async with RunningHerald(herald_settings(tansu_broker, mongo_uri, issuer), issuer) as running:
        yield running


@pytest.fixture(scope="package")
async def api(herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with GraphQLClient.of(herald) as client:
        yield client
