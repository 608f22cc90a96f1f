"""The dev-stack launchers against the real services: no mocks.

Each test starts its own child processes on free loopback ports and stops
them; the Apache Kafka test assembles the jars with Maven on first use
(``python -m devstack.apache_kafka fetch`` does that ahead of time in CI).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from devstack.apache_kafka import ApacheKafkaBroker
from devstack.process import ManagedProcess, StartupError, free_port, run_sync
from devstack.secantus import SecantusServer
from devstack.tansu import TansuBroker


def _topic() -> str:
    return f"devstack-{uuid.uuid4().hex[:8]}"


async def _produce(bootstrap: str, topic: str, values: list[bytes], *, idempotent: bool) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=idempotent, acks="all"
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=value)
    finally:
        await producer.stop()


def _consumer(
    bootstrap: str, topic: str, group: str, *, session_ms: int = 6000
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Tansu paces rebalances by the session timeout (see tansu.py), so a
        # short session keeps group tests quick; Apache Kafka's minimum is 6 s.
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=min(500, session_ms // 5),
    )


async def _consume(consumer: AIOKafkaConsumer, count: int, timeout: float = 30.0) -> list[bytes]:
    got: list[bytes] = []

    async def loop() -> None:
        while len(got) < count:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                got.extend(record.value for record in records if record.value is not None)

    await asyncio.wait_for(loop(), timeout)
    return got


async def _roundtrip_with_manual_commit(
    bootstrap: str, *, idempotent: bool, session_ms: int = 6000
) -> str:
    """Produce 3, consume and commit them, then prove a new member of the same
    group resumes after the commit (gets only the 4th). Returns the topic."""
    topic, group = _topic(), f"g-{uuid.uuid4().hex[:6]}"
    await _produce(bootstrap, topic, [b"a", b"b", b"c"], idempotent=idempotent)
    consumer = _consumer(bootstrap, topic, group, session_ms=session_ms)
    await consumer.start()
    try:
        assert sorted(await _consume(consumer, 3)) == [b"a", b"b", b"c"]
        await consumer.commit()
    finally:
        await consumer.stop()

    await _produce(bootstrap, topic, [b"d"], idempotent=idempotent)
    consumer = _consumer(bootstrap, topic, group, session_ms=session_ms)
    await consumer.start()
    try:
        assert await _consume(consumer, 1) == [b"d"]
        await asyncio.sleep(0.5)
        assert not any((await consumer.getmany(timeout_ms=500)).values())
    finally:
        await consumer.stop()
    return topic


# --- process helpers ----------------------------------------------------------


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 < port < 65536


@pytest.mark.asyncio
async def test_dead_child_reports_its_log_tail(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "boom", [sys.executable, "-c", "print('kaboom-42'); raise SystemExit(3)"], tmp_path
    )
    proc.start()
    with pytest.raises(StartupError, match="kaboom-42") as caught:
        await proc.wait_ready(free_port(), timeout=10)
    assert "code 3" in str(caught.value)


def test_slow_child_times_out_and_is_killed(tmp_path: Path) -> None:
    proc = ManagedProcess(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path
    )
    proc.start()
    port = free_port()
    with pytest.raises(StartupError, match="not ready"):
        run_sync(lambda: proc.wait_ready(port, timeout=1))
    assert proc.is_running
    proc.kill()
    assert not proc.is_running


# --- SecantusDB ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_secantus_crud_unique_index_transaction_and_restart(tmp_path: Path) -> None:
    server = SecantusServer(tmp_path / "data")
    await server.start_async()
    try:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(server.uri)
        coll = client.herald.cards
        await coll.create_index("isin", unique=True)
        await coll.insert_one({"isin": "US0378331005", "v": 1})
        found = await coll.find_one({"isin": "US0378331005"})
        assert found is not None and found["v"] == 1
        with pytest.raises(DuplicateKeyError):
            await coll.insert_one({"isin": "US0378331005", "v": 2})

        async with client.start_session() as session, await session.start_transaction():
            await coll.insert_one({"isin": "DE0007164600", "v": 1}, session=session)
            await client.herald.outbox.insert_one({"event": "x"}, session=session)
        assert await client.herald.outbox.count_documents({}) == 1
        await client.close()

        server.stop()
        assert not server.is_running
        server.start()
        client = AsyncMongoClient(server.uri)
        assert await client.herald.cards.count_documents({}) == 2
        # The unique index survived the restart too.
        with pytest.raises(DuplicateKeyError):
            await client.herald.cards.insert_one({"isin": "DE0007164600"})
        await client.close()
    finally:
        server.stop()


# --- Tansu ---------------------------------------------------------------------


@pytest.fixture
def fresh_tansu() -> Iterator[TansuBroker]:
    broker = TansuBroker()
    broker.start()
    yield broker
    broker.close()


@pytest.mark.asyncio
async def test_tansu_consumer_group_with_manual_commit(fresh_tansu: TansuBroker) -> None:
    await _roundtrip_with_manual_commit(
        fresh_tansu.bootstrap_servers, idempotent=False, session_ms=2000
    )


@pytest.mark.asyncio
async def test_tansu_refuses_the_idempotent_producer(fresh_tansu: TansuBroker) -> None:
    # If this starts passing, Tansu learned InitProducerId: revisit the
    # "idempotence off for Tansu" setting and the tansu.py notes.
    producer = AIOKafkaProducer(
        bootstrap_servers=fresh_tansu.bootstrap_servers, enable_idempotence=True
    )
    try:
        with pytest.raises(KafkaError):
            await asyncio.wait_for(producer.start(), 20)
    finally:
        await producer.stop()


# --- Apache Kafka --------------------------------------------------------------


@pytest.mark.asyncio
async def test_apache_kafka_roundtrip_survives_stop_start(tmp_path: Path) -> None:
    broker = ApacheKafkaBroker(tmp_path / "kafka")
    await broker.start_async()
    try:
        topic = await _roundtrip_with_manual_commit(broker.bootstrap_servers, idempotent=True)
        broker.stop()
        assert not broker.is_running
        await broker.start_async()
        # Same port after the restart, the records and the topic are still there.
        consumer = _consumer(broker.bootstrap_servers, topic, f"fresh-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        try:
            assert sorted(await _consume(consumer, 4)) == [b"a", b"b", b"c", b"d"]
            partitions = consumer.partitions_for_topic(topic)
            assert partitions is not None and len(partitions) == 3
            assert TopicPartition(topic, 0) in consumer.assignment()
        finally:
            await consumer.stop()
    finally:
        broker.stop()
