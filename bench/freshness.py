"""Freshness: a command accepted → visible through GraphQL with its
consistency token, at a steady rate, against a raw aiokafka produce →
consume round trip on the same broker at the same rate.

From a child process (`bench.load`), commands are sent open-loop at a fixed
rate (the n-th at start + n / rate, whether or not the earlier ones have
answered, as independent clients would): each announces a dividend, and as
soon as it is accepted asks `corporateAction(id, consistencyToken)` — which
waits until the cards projection has applied that write. The figure is
accepted (the mutation's answer) → visible (the read's answer): outbox →
relay → broker → projector → store → the read's wait. The baseline is what
the broker alone costs on the same path's shape: a record produced (acks=all)
and consumed by a plain consumer, at the same rate, on the same broker.

    .venv/bin/python -m bench.freshness [--rates 50 200] [--seconds 20] [--broker kafka|tansu]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.commands_throughput import ANNOUNCE, announce_variables
from bench.figures import Figure, Result, print_result
from bench.load import LoadProcess, NotCaughtUp, client, post
from bench.stack import BenchStack, add_stack_arguments, bench_stack, pct

READ = """
query($id: ID!, $token: String) {
  corporateAction(id: $id, consistencyToken: $token) { id version }
}"""
MAX_IN_FLIGHT = 400  # past this many unanswered commands the run stops (the path is saturated)
GIVE_UP_SECONDS = 120.0  # a write not visible after this long fails the run


@dataclass
class Steady:
    rate: float
    sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    accept_ms: list[float] = field(default_factory=list)
    saturated: bool = False
    retries: int = 0  # reads answered NOT_CAUGHT_UP and asked again
    errors: list[str] = field(default_factory=list)  # commands that failed


async def _commands(url: str, token: str, rate: float, seconds: float) -> Steady:
    steady = Steady(rate)
    count = max(1, int(rate * seconds))
    async with client(url, MAX_IN_FLIGHT) as http:

        async def one(n: int) -> None:
            try:
                await measured(n)
            except Exception as exc:  # counted and named in the notes; the run goes on
                steady.errors.append(f"{type(exc).__name__}: {exc}"[:200])

        async def measured(n: int) -> None:
            sent = time.perf_counter()
            data = await post(http, token, ANNOUNCE, announce_variables(n))
            accepted = time.perf_counter()
            answer = data["announceCorporateAction"]
            variables = {"id": answer["corporateAction"]["id"], "token": answer["consistencyToken"]}
            while True:  # NOT_CAUGHT_UP (past HERALD_CONSISTENCY_WAIT_SECONDS): retry, as told
                try:
                    read = await post(http, token, READ, variables)
                    break
                except NotCaughtUp:
                    steady.retries += 1
                    if time.perf_counter() - accepted > GIVE_UP_SECONDS:
                        raise
            if read["corporateAction"] is None:
                raise RuntimeError(f"{variables['id']} not visible with its consistency token")
            steady.accept_ms.append((accepted - sent) * 1000)
            steady.latencies_ms.append((time.perf_counter() - accepted) * 1000)

        started = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            if len(tasks) >= MAX_IN_FLIGHT:
                steady.saturated = True
                break
            task = asyncio.create_task(one(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            steady.sent += 1
        await asyncio.gather(*tasks)
    return steady


def commands(url: str, token: str, rate: float, seconds: float) -> Steady:
    """`rate` commands/s for `seconds` (in the child); accepted → visible per command."""
    return asyncio.run(_commands(url, token, rate, seconds))


async def _round_trips(bootstrap: str, idempotent: bool, rate: float, seconds: float) -> Steady:
    steady = Steady(rate)
    topic = f"bench.freshness.raw.{uuid.uuid4().hex[:8]}"
    count = max(1, int(rate * seconds))
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotent
    )
    await producer.start()
    # the topic exists (auto-created) and the consumer is assigned before the clock starts
    await producer.send_and_wait(topic, b"warm-up")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=10
    )
    await consumer.start()
    while not consumer.assignment():  # noqa: ASYNC110 - aiokafka has no assignment event
        await asyncio.sleep(0.05)
    await consumer.seek_to_end()
    await asyncio.sleep(0.5)
    sent_at: dict[bytes, float] = {}

    async def consume() -> None:
        while len(steady.latencies_ms) < count:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                now = time.perf_counter()
                for record in records:
                    if record.value in sent_at:
                        steady.latencies_ms.append((now - sent_at.pop(record.value)) * 1000)

    consuming = asyncio.create_task(consume())
    try:
        started = time.perf_counter()
        for n in range(count):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            key = f"{n}".encode()
            sent_at[key] = time.perf_counter()
            await producer.send(topic, key)  # queued; the batch is sent by the producer
            steady.sent += 1
        async with asyncio.timeout(seconds + 30):
            await consuming
    finally:
        consuming.cancel()
        await consumer.stop()
        await producer.stop()
    return steady


def round_trips(bootstrap: str, idempotent: bool, rate: float, seconds: float) -> Steady:
    """Raw produce (acks=all) → consume at `rate`/s for `seconds` (in the child)."""
    return asyncio.run(_round_trips(bootstrap, idempotent, rate, seconds))


async def measure(
    stack: BenchStack,
    load: LoadProcess,
    *,
    rates: tuple[float, ...] = (50, 200),
    seconds: float = 20.0,
) -> Result:
    """For each rate: accepted → visible p50/p99 beside the raw broker round trip."""
    result = Result("freshness", sizes={"rates": list(rates), "seconds": seconds})
    token = stack.issuer.mint("bench", roles=["ca-operator"])
    idempotent = stack.settings.kafka_idempotent_producer
    for rate in rates:
        raw = await load.run(round_trips, stack.bootstrap_servers, idempotent, rate, seconds)
        steady = await load.run(commands, stack.herald.base_url, token, rate, seconds)
        if not steady.latencies_ms:
            raise RuntimeError(f"no command became visible at {rate:g}/s: {steady.errors[:1]}")
        for q in (50, 99):
            result.add(
                Figure(
                    f"accepted → visible via consistency token, {rate:g}/s, p{q}",
                    pct(steady.latencies_ms, q),
                    "ms",
                    f"raw aiokafka produce → consume, {rate:g}/s, p{q}",
                    pct(raw.latencies_ms, q),
                    "≤ 300 ms p99" if q == 99 else None,
                )
            )
        achieved = steady.sent / seconds
        result.notes.append(
            f"{rate:g}/s: {steady.sent} commands ({achieved:.0f}/s offered"
            f"{', stopped: over ' + str(MAX_IN_FLIGHT) + ' in flight' if steady.saturated else ''}"
            f"), announce accepted in p50 {pct(steady.accept_ms, 50):.0f} ms, "
            f"p99 {pct(steady.accept_ms, 99):.0f} ms; {steady.retries} reads answered "
            f"NOT_CAUGHT_UP and retried; raw round trips {len(raw.latencies_ms)}"
        )
        if steady.errors:
            result.notes.append(
                f"{rate:g}/s: {len(steady.errors)} commands failed, e.g. {steady.errors[0]}"
            )
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 200])
    parser.add_argument("--seconds", type=float, default=20.0, help="per rate")
    add_stack_arguments(parser)
    args = parser.parse_args()
    async with (
        bench_stack("freshness", broker=args.broker, keep=args.keep) as stack,
        LoadProcess() as load,
    ):
        result = await measure(stack, load, rates=tuple(args.rates), seconds=args.seconds)
    print_result(result, store="SecantusDB (sync-on-commit)", broker=args.broker)


if __name__ == "__main__":
    asyncio.run(main())
