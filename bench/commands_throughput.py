"""Accepted commands per second through the full path, and the relay's latency.

Starts SecantusDB (durable commits) and Apache Kafka 4 on loopback, and one
Herald process; then, in one run:

- baseline: `{ __typename }` over the same HTTP stack (the floor for any request),
  and a raw `insert_one` into the same store (the floor for a durable write);
- announce commands from 1 client, then from 20 concurrent clients;
- relay latency per event: Kafka record timestamp (producer send) − occurredAt,
  and the time until a plain consumer sees it.

    .venv/bin/python -m bench.commands_throughput [--commands 400] [--broker kafka|tansu]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from adapters.kafka.topics import topic_for
from bench.stack import add_stack_arguments, bench_stack, pct
from domain.events import AGGREGATE_CORPORATE_ACTION

ANNOUNCE = """
mutation($input: AnnounceCorporateActionInput!) {
  announceCorporateAction(input: $input) { corporateAction { id version } consistencyToken }
}"""


def terms(n: int) -> dict[str, Any]:
    return {
        "reference": f"BENCH-{uuid.uuid4().hex[:12]}-{n}",
        "eventType": "DVCA",
        "mandatoryVoluntary": "MAND",
        "isin": "RU0009029540",
        "announcementDate": "2026-11-20",
        "recordDate": "2026-12-15",
        "grossRate": {"amount": "33.30", "currency": "RUB"},
    }


async def post(http: httpx.AsyncClient, token: str, query: str, variables: dict[str, Any]) -> None:
    response = await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
    )
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body


async def rate(
    http: httpx.AsyncClient, token: str, count: int, clients: int, query: str, variables: Any
) -> float:
    per_client = count // clients

    async def worker(w: int) -> None:
        for i in range(per_client):
            await post(http, token, query, variables(w * per_client + i))

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(clients)))
    return per_client * clients / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=400)
    add_stack_arguments(parser)
    args = parser.parse_args()

    async with bench_stack("commands", broker=args.broker, keep=args.keep) as stack:
        herald, store, settings, issuer = stack.herald, stack.store, stack.settings, stack.issuer
        token = issuer.mint("bench", roles=["ca-operator"])
        print(
            f"store: SecantusDB (sync-on-commit); broker: {args.broker}; commands: {args.commands}"
        )
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(base_url=herald.base_url, timeout=60, limits=limits) as http:
            floor_http = await rate(http, token, args.commands, 1, "{ __typename }", lambda n: {})
            mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store.uri)
            raw = mongo["bench"]["raw"]
            started = time.perf_counter()
            for n in range(args.commands):
                await raw.insert_one({"n": n, "payload": terms(n)})
            floor_store = args.commands / (time.perf_counter() - started)
            await mongo.close()

            single = await rate(
                http, token, args.commands, 1, ANNOUNCE, lambda n: {"input": terms(n)}
            )
            many = await rate(
                http, token, args.commands, 20, ANNOUNCE, lambda n: {"input": terms(n)}
            )

        # Wait for the relay to drain, then read what reached Kafka.
        while await herald.services.events.unpublished_count():  # noqa: ASYNC110 - polls the store
            await asyncio.sleep(0.05)
        topic = topic_for(settings.kafka_topic_prefix, AGGREGATE_CORPORATE_ACTION)
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        relay_ms: list[float] = []
        total = 2 * args.commands
        while len(relay_ms) < total:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                for m in messages:
                    occurred = datetime.fromisoformat(json.loads(m.value)["occurredAt"])
                    relay_ms.append(m.timestamp - occurred.timestamp() * 1000)
        await consumer.stop()

    print(f"baseline  {{ __typename }} over HTTP, 1 client : {floor_http:8.1f} req/s")
    print(f"baseline  raw insert_one, 1 client          : {floor_store:8.1f} docs/s")
    print(
        f"announce  1 client                          : {single:8.1f} commands/s"
        f"  ({single / floor_http:.2f}× the HTTP floor, {single / floor_store:.2f}× raw insert)"
    )
    print(
        f"announce  20 concurrent clients             : {many:8.1f} commands/s"
        f"  ({many / single:.2f}× one client)"
    )
    print(
        f"relay publish latency (occurredAt → Kafka record time) over {len(relay_ms)} events: "
        f"p50 {pct(relay_ms, 50):.1f} ms, p99 {pct(relay_ms, 99):.1f} ms, "
        f"max {max(relay_ms):.1f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
