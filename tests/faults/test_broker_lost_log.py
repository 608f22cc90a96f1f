"""A memory-only broker SIGKILLed and started again under a running
`herald serve` (seen with Tansu, 2 x 7 000 holders, 4 approvals): the
approvals still waiting in the log behind the fan-out under way were lost
with it, their notices never came, and /readyz said ready throughout — only
a restart of Herald (whose start re-fills an empty log) brought them. The
relay's process now watches the log's marker topic and re-fills a log the
broker lost, as at a start (services.Services._watch_log)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from adapters.auth.dev_issuer import DevIssuer
from adapters.kafka.consumer import KafkaEventConsumer
from adapters.kafka.topics import ensure_topics, log_lost
from devstack.herald import RunningHerald
from devstack.tansu import TansuBroker
from observability.readiness import passed
from tests.projections.scenario import HeldFanout, Portal, notices_of
from tests.support import Broker, GraphQLClient, eventually, herald_settings

HOLDERS = {"ACC-1": "100", "ACC-2": "5"}


@pytest.fixture
async def herald(
    own_tansu: TansuBroker, mongo_uri: str, issuer: DevIssuer
) -> AsyncIterator[RunningHerald]:
    broker = Broker("tansu", own_tansu.bootstrap_servers, idempotent=False)
    async with RunningHerald(herald_settings(broker, mongo_uri, issuer), issuer) as running:
        yield running
    store: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri)
    await store.drop_database(running.settings.mongo_database)
    await store.close()


async def test_a_log_the_broker_lost_mid_fanout_is_refilled_and_every_notice_issued(
    herald: RunningHerald, own_tansu: TansuBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    fanout = HeldFanout(herald, monkeypatch)  # the first approval's fan-out takes time
    settings = herald.settings
    async with GraphQLClient.of(herald) as client:
        portal = Portal(client)
        await portal.positions(HOLDERS)
        first = await portal.publish(reference="RU-LOST-LOG-1")
        await fanout.writing.wait()
        second = await portal.publish(reference="RU-LOST-LOG-2")  # waits behind the first
        await eventually(herald.services.events.unpublished_count, lambda n: n == 0)

        own_tansu.kill()  # the log goes with it
        own_tansu.start()
        assert await log_lost(settings.kafka_bootstrap, settings.kafka_topic_prefix)
        fanout.release.set()

        notices = await eventually(
            lambda: notices_of(herald, second), lambda n: len(n) == len(HOLDERS), timeout=90
        )
        assert sorted(notices) == sorted(HOLDERS)
        assert sorted(await notices_of(herald, first)) == sorted(HOLDERS)
        assert not await log_lost(settings.kafka_bootstrap, settings.kafka_topic_prefix)
        await eventually(herald.services.ready, passed, timeout=90)


async def test_a_rewound_consumer_reads_a_refilled_log_from_its_start(
    own_tansu: TansuBroker,
) -> None:
    """A member that read 5 records of the lost log sits at offset 5; the new
    log, re-filled past 5 before its next fetch, would be read from 5 on (its
    first records skipped). Rewound, it reads the new log from offset 0."""
    topic, group = f"t{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    await ensure_topics(own_tansu.bootstrap_servers, "", 1, topics=[topic])

    async def produce(values: list[bytes]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=own_tansu.bootstrap_servers)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value, partition=0)
        finally:
            await producer.stop()

    await produce([b"old-%d" % n for n in range(5)])
    consumer = KafkaEventConsumer(own_tansu.bootstrap_servers, group, [topic])
    await consumer.start()
    try:
        read = await _offsets(consumer, 5)
        assert read == list(range(5))
        own_tansu.kill()  # the log goes with it
        own_tansu.start()
        await ensure_topics(own_tansu.bootstrap_servers, "", 1, topics=[topic])
        await produce([b"new-%d" % n for n in range(8)])  # re-filled past 5
        await consumer.rewind()
        assert await _offsets(consumer, 8) == list(range(8))
    finally:
        await consumer.stop()


async def _offsets(consumer: KafkaEventConsumer, count: int) -> list[int]:
    """The offsets of the next `count` records `consumer` fetches."""
    offsets: list[int] = []
    for _ in range(60):
        batch = await consumer.next_batch(timeout_ms=500)
        offsets += [record.offset for record in batch.records]
        if len(offsets) >= count:
            break
    return offsets
