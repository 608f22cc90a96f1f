"""Accepted commands per second through the full path, and the relay's latency.

Starts SecantusDB (durable commits) and Apache Kafka 4 on loopback, and one
Herald process; the load comes from a child process (`bench.load`); then, in
one run:

- baseline: `{ __typename }` over the same HTTP stack (the floor for any request),
  and a raw `insert_one` into the same store (the floor for a durable write);
- announce commands from 1 client, then from 20 concurrent clients;
- relay latency per event: Kafka record timestamp (producer send) − occurredAt.

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

from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient

from adapters.kafka.topics import topic_for
from bench.figures import Figure, Result, print_result
from bench.load import GraphQLLoad, LoadProcess, LoadResult, empty, graphql_load
from bench.stack import BenchStack, add_stack_arguments, bench_stack, pct
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


def announce_variables(n: int) -> dict[str, Any]:
    return {"input": terms(n)}


async def _raw_inserts(uri: str, count: int, seconds: float) -> LoadResult:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    raw = mongo["bench"]["raw"]
    result = LoadResult()
    started = time.perf_counter()
    for n in range(count):
        if time.perf_counter() - started > seconds:
            break
        await raw.insert_one({"n": n, "payload": terms(n)})
        result.completed += 1
    result.seconds = time.perf_counter() - started
    await mongo.close()
    return result


def raw_inserts(uri: str, count: int, seconds: float) -> LoadResult:
    """Durable `insert_one`s of a command-sized document, one after another (in the child)."""
    return asyncio.run(_raw_inserts(uri, count, seconds))


async def relay_latencies(stack: BenchStack, events: int) -> list[float]:
    """ms from each event's occurredAt to its Kafka record timestamp (the
    producer's send), for the first `events` events of the topic."""
    herald = stack.herald
    while await herald.services.events.unpublished_count():  # noqa: ASYNC110 - polls the store
        await asyncio.sleep(0.05)
    topic = topic_for(stack.settings.kafka_topic_prefix, AGGREGATE_CORPORATE_ACTION)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    relay_ms: list[float] = []
    deadline = time.monotonic() + 60
    try:
        while len(relay_ms) < events and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                for m in messages:
                    occurred = datetime.fromisoformat(json.loads(m.value)["occurredAt"])
                    relay_ms.append(m.timestamp - occurred.timestamp() * 1000)
    finally:
        await consumer.stop()
    return relay_ms


async def measure(
    stack: BenchStack,
    load: LoadProcess,
    *,
    commands: int = 400,
    clients: int = 20,
    seconds: float = 120.0,
) -> Result:
    """Announce commands/s from 1 and `clients` clients against the HTTP floor
    and the store's durable `insert_one`; each phase stops after `commands`
    requests or `seconds`, whichever comes first."""
    result = Result("commands", sizes={"commands": commands, "clients": clients})
    token = stack.issuer.mint("bench", roles=["ca-operator"])
    url = stack.herald.base_url

    def phase(query: str, variables: Any, count: int, n: int) -> GraphQLLoad:
        return GraphQLLoad(url, token, query, variables, count, n, seconds)

    floor_http = await load.run(graphql_load, phase("{ __typename }", empty, commands, 1))
    floor_store = await load.run(raw_inserts, stack.store.uri, commands, seconds)
    single = await load.run(graphql_load, phase(ANNOUNCE, announce_variables, commands, 1))
    many = await load.run(graphql_load, phase(ANNOUNCE, announce_variables, commands, clients))
    relay_ms = await relay_latencies(stack, single.completed + many.completed)
    result.add(
        Figure(
            "announce, 1 client",
            single.rate,
            "commands/s",
            "raw durable insert_one, 1 client",
            floor_store.rate,
            "≥ 0.3×",
        ),
        Figure(
            f"announce, {clients} clients",
            many.rate,
            "commands/s",
            "announce, 1 client",
            single.rate,
            "≥ 4×",
        ),
        Figure(
            "announce, 1 client, vs the HTTP floor",
            single.rate,
            "commands/s",
            "{ __typename } over HTTP, 1 client",
            floor_http.rate,
        ),
    )
    if relay_ms:
        result.add(Figure("relay: occurredAt → Kafka record, p99", pct(relay_ms, 99), "ms"))
        result.notes.append(
            f"relay publish latency over {len(relay_ms)} events: p50 {pct(relay_ms, 50):.1f} ms,"
            f" p99 {pct(relay_ms, 99):.1f} ms, max {max(relay_ms):.1f} ms"
        )
    result.notes.append(
        f"announce latency p50/p99: 1 client {pct(single.latencies_ms, 50):.1f}/"
        f"{pct(single.latencies_ms, 99):.1f} ms, {clients} clients "
        f"{pct(many.latencies_ms, 50):.1f}/{pct(many.latencies_ms, 99):.1f} ms"
    )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=400)
    add_stack_arguments(parser)
    args = parser.parse_args()
    async with (
        bench_stack("commands", broker=args.broker, keep=args.keep) as stack,
        LoadProcess() as load,
    ):
        result = await measure(stack, load, commands=args.commands)
    print_result(result, broker=args.broker)


if __name__ == "__main__":
    asyncio.run(main())
