"""What telemetry costs (issue 15): announce commands/s (1 client) and the
uncached public card list (req/s, 4 clients), with tracing off and on, in one
run. Prometheus metrics are always on in Herald, so their cost is measured
apart: the metric updates one command makes, timed in a loop, against one
command's time.

Each phase starts its own stack (SecantusDB with sync-on-commit, the broker,
one Herald) the same way; the second after `configure_tracing` installed the
provider, so its store and broker clients and its Starlette app are
instrumented as in production. "On" hands every span to an in-memory
exporter through a synchronous processor: the cost of making, recording and
handing over the spans, not of an exporter's network I/O (which a
BatchSpanProcessor moves off the request path).

    .venv/bin/python -m bench.telemetry_overhead [--commands 200] [--reads 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app import create_app
from bench.card_list_read import WEBSITE, Variant, load, serve
from bench.card_list_read import terms as card_terms
from bench.commands_throughput import ANNOUNCE, announce_variables
from bench.load import GraphQLLoad, LoadProcess, graphql_load
from bench.stack import APPROVER, OPERATOR, BenchStack, add_stack_arguments, bench_stack
from domain.ports import CardQuery
from domain.principal import ROLE_OPERATOR
from observability import metrics
from observability.tracing import configure_tracing
from settings import Settings

CARDS = 30


@dataclass(frozen=True)
class Phase:
    commands_per_second: float
    reads_per_second: float


async def _phase(stack: BenchStack, load_process: LoadProcess, commands: int, reads: int) -> Phase:
    services = stack.herald.services
    for n in range(CARDS):
        announced = await services.handlers.announce(card_terms(n), OPERATOR)
        await services.handlers.approve(announced.action.id, 1, APPROVER)
    while await services.cards.count(CardQuery(public_only=True)) < CARDS:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    token = stack.issuer.mint("bench", roles=[ROLE_OPERATOR])
    announce = await load_process.run(
        graphql_load,
        GraphQLLoad(stack.herald.base_url, token, ANNOUNCE, announce_variables, commands, 1, 120),
    )
    uncached = await serve(create_app(stack.settings.with_overrides(public_cache=False), services))
    try:
        request = {
            "query": WEBSITE.read_text(),
            "operationName": "WebsiteCards",
            "variables": {"first": 20},
        }
        body = json.dumps(request).encode()
        variant = Variant("graphql uncached", "uncached", "POST", "/graphql", body)
        _, rate = await load_process.run(load, variant, uncached.url, reads, 4)
    finally:
        uncached.server.should_exit = True
        await uncached.task
    return Phase(announce.rate, rate)


def _metric_updates_seconds(rounds: int = 20_000) -> float:
    """Seconds of the metric updates one announce makes (command counter and
    histogram, Idempotency-Key outcome, GraphQL latency), averaged."""
    started = time.perf_counter()
    for _ in range(rounds):
        metrics.COMMANDS.labels("announce", "accepted").inc()
        metrics.COMMAND_SECONDS.labels("announce").observe(0.01)
        metrics.IDEMPOTENCY.labels("executed").inc()
        metrics.GRAPHQL_SECONDS.labels("announceCorporateAction", "mutation", "ok").observe(0.01)
    return (time.perf_counter() - started) / rounds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200, help="announces per phase")
    parser.add_argument("--reads", type=int, default=400, help="card-list requests per phase")
    add_stack_arguments(parser, broker="tansu")
    args = parser.parse_args()
    async with LoadProcess() as load_process:
        async with bench_stack("telemetry-off", broker=args.broker) as stack:
            off = await _phase(stack, load_process, args.commands, args.reads)
        exporter = InMemorySpanExporter()
        # installed before the second stack: its Herald's store and broker
        # clients and its Starlette app are instrumented as in production
        configure_tracing(Settings(), exporter=exporter)
        async with bench_stack("telemetry-on", broker=args.broker) as stack:
            on = await _phase(stack, load_process, args.commands, args.reads)
        spans = len(exporter.get_finished_spans())
    per_update = _metric_updates_seconds()
    command_seconds = 1 / off.commands_per_second
    rows: list[tuple[str, Any, Any, Any]] = [
        (
            "announce, 1 client (commands/s)",
            off.commands_per_second,
            on.commands_per_second,
            on.commands_per_second / off.commands_per_second,
        ),
        (
            "card list uncached, 4 clients (req/s)",
            off.reads_per_second,
            on.reads_per_second,
            on.reads_per_second / off.reads_per_second,
        ),
    ]
    print(f"\n{'path':40} {'tracing off':>12} {'tracing on':>12} {'on/off':>7}")
    for name, a, b, ratio in rows:
        print(f"{name:40} {a:12.1f} {b:12.1f} {ratio:6.2f}×")
    print(f"spans recorded with tracing on: {spans}")
    print(
        f"metrics: one announce's metric updates take {per_update * 1e6:.1f} µs, "
        f"{per_update / command_seconds * 100:.3f} % of one command "
        f"({command_seconds * 1000:.1f} ms at 1 client, tracing off)"
    )


if __name__ == "__main__":
    asyncio.run(main())
