"""Real services for the whole run: SecantusDB, Tansu and Apache Kafka are
started once per test session, on loopback, and stopped at the end. A suite
that needs one and cannot start it fails — it never skips."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from adapters.auth.dev_issuer import DevIssuer
from adapters.mongo.client import Document, connect
from devstack.secantus import SecantusServer
from devstack.tansu import TansuBroker
from tests.support import Broker, GraphQLClient, RunningHerald, herald_settings


@pytest.fixture(scope="session")
def secantus() -> Iterator[SecantusServer]:
    server = SecantusServer(None)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mongo_uri(secantus: SecantusServer) -> str:
    return secantus.uri


@pytest.fixture
async def mongo_db(mongo_uri: str) -> AsyncIterator[AsyncDatabase[Document]]:
    """A fresh MongoDB database per test, dropped after."""
    client = connect(mongo_uri)
    name = f"herald_test_{uuid.uuid4().hex[:10]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


@pytest.fixture(scope="session")
def tansu() -> Iterator[TansuBroker]:
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from devstack.apache_kafka import ApacheKafkaBroker

    broker = ApacheKafkaBroker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session", params=["kafka", "tansu"])
def broker(request: pytest.FixtureRequest) -> Broker:
    """Every Kafka-facing test runs against Apache Kafka and against Tansu."""
    if request.param == "kafka":
        kafka = request.getfixturevalue("apache_kafka")
        return Broker("kafka", kafka.bootstrap_servers, idempotent=True)
    return request.getfixturevalue("tansu_broker")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def tansu_broker(tansu: TansuBroker) -> Broker:
    """Tansu, for suites where the broker is not the subject."""
    # Tansu refuses InitProducerId, so the idempotent producer is off there.
    return Broker("tansu", tansu.bootstrap_servers, idempotent=False, session_timeout_ms=2000)


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> DevIssuer:
    """The tests' own token issuer (its key is generated for this run)."""
    return DevIssuer(tmp_path_factory.mktemp("issuer"), issuer="herald-tests", audience="herald")


@pytest.fixture
async def herald(broker: Broker, mongo_uri: str, issuer: DevIssuer) -> AsyncIterator[RunningHerald]:
    async with RunningHerald(herald_settings(broker, mongo_uri, issuer), issuer) as running:
        yield running
    # Keep the session's shared store lean: hundreds of test databases slow it.
    store: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri)
    await store.drop_database(running.settings.mongo_database)
    await store.close()


@pytest.fixture
async def client(herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with GraphQLClient.of(herald) as client:
        yield client


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
