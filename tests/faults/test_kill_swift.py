"""SIGKILL of the `herald worker`s publishing SWIFT deliveries mid-run (two
sharing the dispatcher's group; both, so that whichever had records on the
broker loses their outcomes), then a restart: counted on the real
broker, every (notice, version) is on HERALD_SWIFT_TOPIC exactly once as an
MT564 and once as its ISO 20022 message — a delivery whose records the
broker took before the kill, but whose outcome the log never heard, is not
published again (adapters/channels/swift.py reads the topic back on a later
attempt).

The API runs in the test process with the relay and projectors, without the
dispatcher; the workers run the dispatcher with SWIFT on."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from adapters.auth.dev_issuer import DevIssuer
from devstack.apache_kafka import ApacheKafkaBroker
from tests.delivery.test_swift_channel import headers, partitions_of, topic_records
from tests.faults.test_kill_dispatcher import set_preferences, started_workers
from tests.projections.scenario import Portal
from tests.support import (
    Broker,
    GraphQLClient,
    RunningHerald,
    eventually,
    herald_settings,
    worker_env,
)

ACCOUNTS = 120
SENDER = "HRLDRUMM"
INSTITUTION = "DEUTDEFFXXX"


async def test_sigkill_of_a_swift_worker_publishes_each_version_once(
    apache_kafka: ApacheKafkaBroker, mongo_uri: str, issuer: DevIssuer, tmp_path: Path
) -> None:
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    settings = herald_settings(broker, mongo_uri, issuer, run_dispatcher=False)
    topic = f"{settings.kafka_topic_prefix}.swift.outbound"
    herald = RunningHerald(settings, issuer)
    await herald.start()
    env = {
        **worker_env(settings),
        "HERALD_RUN_DISPATCHER": "true",
        "HERALD_SWIFT_SENDER_BIC": SENDER,
        "HERALD_SWIFT_TOPIC": topic,
        "HERALD_DELIVERY_LEASE_SECONDS": "15",
    }
    workers = started_workers("swift-worker", env, tmp_path)
    try:
        accounts = [f"INST-{n:04d}" for n in range(ACCOUNTS)]
        await set_preferences(
            herald,
            [{"accountId": a, "channels": ["SWIFT"], "bic": INSTITUTION} for a in accounts],
        )
        db = herald.services.db
        async with httpx.AsyncClient(base_url=herald.base_url, timeout=30) as http:
            portal = Portal(GraphQLClient(http, issuer))
            await portal.publish(reference="RU-KILL-SWIFT")
            await portal.positions({a: "10" for a in accounts})

        deliveries = db["deliveries"]
        # Mid-run: records on the topic, most deliveries still to go.
        await eventually(
            lambda: _on_topic(apache_kafka.bootstrap_servers, topic),
            lambda n: n >= 20,
            timeout=180,
        )
        for worker in workers:  # both: whichever published, its outcomes are lost
            worker.kill()
        delivered = await deliveries.count_documents({"status": "DELIVERED"})
        on_topic = await _on_topic(apache_kafka.bootstrap_servers, topic)
        assert delivered < ACCOUNTS, "the run finished before the kill"
        print(f"\nSIGKILL of both workers: {on_topic} records on the topic, {delivered} recorded")
        started = time.monotonic()
        for worker in workers:  # they rejoin, re-claim what they held once the lease ran out
            worker.start()
        await eventually(
            lambda: deliveries.count_documents({"status": "DELIVERED"}),
            lambda n: n == ACCOUNTS,
            timeout=180,
        )
        print(f"all delivered {time.monotonic() - started:.1f}s after the kill")
        again = await deliveries.count_documents({"attempts": {"$gte": 2}})
        print(f"deliveries attempted again after the kill: {again}")
        semes = {d["messageId"] async for d in deliveries.find({}, {"messageId": 1})}
    finally:
        for worker in workers:
            worker.stop(timeout=10)
        await herald.stop()

    # The broker's own record: each (SEME, format) once, for every notice version.
    records = await topic_records(apache_kafka.bootstrap_servers, topic, at_least=2 * ACCOUNTS)
    published = Counter((r.key.decode(), headers(r)["format"]) for r in records if r.key)
    assert {seme for seme, _ in published} == semes and len(semes) == ACCOUNTS
    assert Counter(form for _, form in published) == {
        "MT564": ACCOUNTS,
        "seev.031.001.14": ACCOUNTS,
    }
    repeated = {k: n for k, n in published.items() if n > 1}
    assert not repeated, f"published more than once: {repeated}"


async def _on_topic(bootstrap: str, topic: str) -> int:
    """How many records the topic holds (0 until the channel created it)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await partitions_of(bootstrap, topic)
        return sum((await consumer.end_offsets(partitions)).values())
    except KafkaError:
        return 0
    finally:
        await consumer.stop()
