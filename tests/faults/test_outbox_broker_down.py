"""Invariant 1: commands accepted while Kafka is down reach Kafka when it
returns — every event once, in order per aggregate."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from adapters.auth.dev_issuer import DevIssuer
from adapters.kafka.topics import topic_for
from devstack.apache_kafka import ApacheKafkaBroker
from domain.events import AGGREGATE_CORPORATE_ACTION
from tests.e2e.test_walking_skeleton import announce
from tests.support import (
    Broker,
    GraphQLClient,
    RunningHerald,
    eventually,
    herald_settings,
    operation_document,
)

PORTAL = operation_document("portal")


async def read_topic(
    bootstrap: str, topic: str, expected: int, timeout: float = 60
) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records += [json.loads(m.value) for m in messages]
        # a short grace period to catch duplicates beyond the expected count
        for messages in (await consumer.getmany(timeout_ms=1000)).values():
            records += [json.loads(m.value) for m in messages]
    finally:
        await consumer.stop()
    return records


async def test_commands_accepted_while_kafka_is_down_arrive_once_in_order(
    apache_kafka: ApacheKafkaBroker, mongo_uri: str, issuer: DevIssuer
) -> None:
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    herald = RunningHerald(herald_settings(broker, mongo_uri, issuer), issuer)
    await herald.start()

    async def relay_backlog() -> int | None:
        return herald.services.relay.backlog

    try:
        async with httpx.AsyncClient(base_url=herald.base_url, timeout=30) as http:
            client = GraphQLClient(http, issuer)
            operator = client.token("olga", "ca-operator")
            first = await announce(client, operator, reference="RU-OUTAGE-0")
            ids = [first["corporateAction"]["id"]]

            await asyncio.to_thread(apache_kafka.stop)
            try:
                # Kafka is down: commands are still accepted (stored in the outbox).
                for n in range(1, 6):
                    announced = await announce(client, operator, reference=f"RU-OUTAGE-{n}")
                    ids.append(announced["corporateAction"]["id"])
                amended = await client.data(
                    PORTAL,
                    {"input": {"id": ids[0], "expectedVersion": 1, "securityName": "renamed"}},
                    token=operator,
                    operation_name="PortalAmend",
                )
                token = amended["amendCorporateAction"]["consistencyToken"]
                assert await herald.services.events.unpublished_count() >= 6
                # measured by the relay itself (no scrape): a backlog it cannot publish
                # (its own figure: the process's gauge is shared by every Herald
                # a test process ran, and one left running would write it too)
                await eventually(relay_backlog, lambda pending: (pending or 0) >= 6)
            finally:
                await asyncio.to_thread(apache_kafka.start)

            # Back up: the relay drains the outbox and the projector catches up.
            card = await client.data(
                PORTAL,
                {"id": ids[0], "consistencyToken": token},
                token=operator,
                operation_name="PortalCard",
            )
            assert card["corporateAction"]["pendingVersion"] == 2
            for _ in range(200):
                if await herald.services.events.unpublished_count() == 0:
                    break
                await asyncio.sleep(0.1)
            assert await herald.services.events.unpublished_count() == 0
            await eventually(relay_backlog, lambda pending: pending == 0)

        topic = topic_for(herald.settings.kafka_topic_prefix, AGGREGATE_CORPORATE_ACTION)
        records = await read_topic(apache_kafka.bootstrap_servers, topic, expected=7)
        event_ids = [r["eventId"] for r in records]
        assert len(event_ids) == 7 and len(set(event_ids)) == 7  # every event, once
        versions: dict[str, list[int]] = defaultdict(list)
        for r in records:  # one partition per aggregate: order within it holds
            versions[r["aggregateId"]].append(r["version"])
        assert set(versions) == set(ids)
        assert versions[ids[0]] == [1, 2]
        assert all(v == [1] for key, v in versions.items() if key != ids[0])
    finally:
        await herald.stop()
