"""Accepted commands per second through the full path, and the relay's latency.

Starts SecantusDB (durable commits) and Apache Kafka 4 on loopback, and one
Herald process; the load comes from a child process (`bench.load`); then, in
one run:

- baseline: `{ __typename }` over the same HTTP stack (the floor for any request),
  and a raw `insert_one` into the same store (the floor for a durable write);
- announce commands from 1 client, then from 20 concurrent clients;
- acknowledgeNotice the same way, on the notices of one approved dividend;
- relay latency per event: Kafka record timestamp (producer send) − occurredAt;
- the store commands per command of each 20-client phase, by command and
  collection, from every client of the bench process (the Herald's API, relay,
  projectors, checkpoints: a PyMongo command listener registered on import).

    .venv/bin/python -m bench.commands_throughput [--commands 400] [--broker kafka|tansu]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from datetime import date, datetime
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer
from pymongo import AsyncMongoClient, monitoring

from adapters.kafka.topics import topic_for
from adapters.mongo.notices import NOTICES
from bench.fanout_scaleout import cpu_seconds
from bench.figures import Figure, Result, print_result
from bench.load import GraphQLLoad, LoadProcess, LoadResult, empty, graphql_load
from bench.stack import APPROVER, OPERATOR, BenchStack, add_stack_arguments, bench_stack, pct
from domain.events import AGGREGATE_CORPORATE_ACTION
from domain.principal import SCOPE_NOTICES_READ

MAX_ACKNOWLEDGEMENTS = 150  # per phase: one depositor token holds every account
ACKNOWLEDGE = """
mutation($id: ID!) { acknowledgeNotice(id: $id) { notice { id acknowledgedAt } consistencyToken } }
"""
ANNOUNCE = """
mutation($input: AnnounceCorporateActionInput!) {
  announceCorporateAction(input: $input) { corporateAction { id version } consistencyToken }
}"""


class StoreCommands(monitoring.CommandListener):
    """Every store command sent from this process (by clients made after it
    was registered), counted by `command collection` (e.g. "insert events")."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        if not isinstance(target, str):  # getMore names its cursor's collection apart
            target = event.command.get("collection", "")
        self.counts[f"{event.command_name} {target}".strip()] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def per_command(self, before: Counter[str], commands: int) -> str:
        """The commands sent since `before` (a copy of `counts`), per one of
        `commands`, most first (those under 0.05 a command left out)."""
        sent = self.counts - before
        shares = [(name, count / max(commands, 1)) for name, count in sent.most_common()]
        return ", ".join(f"{name} {share:.2f}" for name, share in shares if share >= 0.05)


STORE_COMMANDS = StoreCommands()
monitoring.register(STORE_COMMANDS)  # before any stack starts: it sees every client


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


def acknowledge_variables(notice_ids: list[str], n: int) -> dict[str, Any]:
    return {"id": notice_ids[n]}


async def seed_notices(stack: BenchStack, accounts: int) -> list[str]:
    """One approved dividend held by `accounts` accounts (ACK-…); its notice ids."""
    handlers = stack.herald.services.handlers
    isin, as_of = "RU0007661625", date(2027, 3, 1)
    holders = [f"ACK-{n:06d}" for n in range(accounts)]
    await handlers.record_positions(
        {
            "isin": isin,
            "asOf": as_of.isoformat(),
            "positions": [
                {"accountId": a, "quantity": "100", "taxRatePercent": "13"} for a in holders
            ],
        },
        OPERATOR,
    )
    announced = await handlers.announce(
        {**terms(0), "isin": isin, "recordDate": as_of.isoformat()}, OPERATOR
    )
    await handlers.approve(announced.action.id, 1, APPROVER)
    notices = stack.herald.services.db[NOTICES]
    query = {"corporateActionId": announced.action.id, "accountId": {"$in": holders}}
    deadline = time.monotonic() + 60 + accounts / 50
    while await notices.count_documents(query) < accounts:
        assert time.monotonic() < deadline, "the notices to acknowledge were not projected"
        await asyncio.sleep(0.2)
    return [str(doc["_id"]) async for doc in notices.find(query, {"_id": 1})]


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


def _cpu_per_command(
    store_pid: int | None, started: tuple[float, float], commands: int
) -> tuple[float, float]:
    """ms of CPU per command since `started` (the store's, this process's)."""
    store = cpu_seconds(store_pid) - started[0]
    own = time.process_time() - started[1]
    return 1000 * store / max(commands, 1), 1000 * own / max(commands, 1)


async def measure(
    stack: BenchStack,
    load: LoadProcess,
    *,
    commands: int = 400,
    clients: int = 20,
    seconds: float = 120.0,
    acknowledgements: bool = True,
) -> Result:
    """Announce commands/s from 1 and `clients` clients against the HTTP floor
    and the store's durable `insert_one`; each phase stops after `commands`
    requests or `seconds`, whichever comes first. With `acknowledgements`, the
    same for acknowledgeNotice on the notices of one approved dividend."""
    result = Result("commands", sizes={"commands": commands, "clients": clients})
    token = stack.issuer.mint("bench", roles=["ca-operator"])
    url = stack.herald.base_url

    def phase(query: str, variables: Any, count: int, n: int) -> GraphQLLoad:
        return GraphQLLoad(url, token, query, variables, count, n, seconds)

    floor_http = await load.run(graphql_load, phase("{ __typename }", empty, commands, 1))
    floor_store = await load.run(raw_inserts, stack.store.uri, commands, seconds)
    store_pid = stack.store.process.pid
    cpu = cpu_seconds(store_pid), time.process_time()
    single = await load.run(graphql_load, phase(ANNOUNCE, announce_variables, commands, 1))
    cpu_single = _cpu_per_command(store_pid, cpu, single.completed)
    before, cpu = Counter(STORE_COMMANDS.counts), (cpu_seconds(store_pid), time.process_time())
    many = await load.run(graphql_load, phase(ANNOUNCE, announce_variables, commands, clients))
    cpu_many = _cpu_per_command(store_pid, cpu, many.completed)
    result.notes.append(
        f"store commands per announce, {clients} clients: "
        + STORE_COMMANDS.per_command(before, many.completed)
    )
    result.notes.append(
        "CPU per announce, store / Herald (the bench process): "
        f"1 client {cpu_single[0]:.1f} / {cpu_single[1]:.1f} ms, "
        f"{clients} clients {cpu_many[0]:.1f} / {cpu_many[1]:.1f} ms"
    )
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
    if acknowledgements:
        acks_each = min(commands, MAX_ACKNOWLEDGEMENTS)  # the token names every account
        notice_ids = await seed_notices(stack, 2 * acks_each)
        depositor = stack.issuer.mint(
            "bench-depositor",
            accounts=[f"ACK-{n:06d}" for n in range(2 * acks_each)],
            scopes=[SCOPE_NOTICES_READ],
        )
        acks: list[LoadResult] = []
        for half, n in ((0, 1), (1, clients)):
            before = Counter(STORE_COMMANDS.counts)
            acks.append(
                await load.run(
                    graphql_load,
                    GraphQLLoad(
                        url,
                        depositor,
                        ACKNOWLEDGE,
                        partial(acknowledge_variables, notice_ids[half * acks_each :]),
                        acks_each,
                        n,
                        seconds,
                    ),
                )
            )
        result.notes.append(
            f"store commands per acknowledgement, {clients} clients: "
            + STORE_COMMANDS.per_command(before, acks[1].completed)
        )
        result.add(
            Figure(
                "acknowledge, 1 client",
                acks[0].rate,
                "commands/s",
                "raw durable insert_one, 1 client",
                floor_store.rate,
                "≥ 0.3×",
            ),
            Figure(
                f"acknowledge, {clients} clients",
                acks[1].rate,
                "commands/s",
                "acknowledge, 1 client",
                acks[0].rate,
                "≥ 4×",
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
