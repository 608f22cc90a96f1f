"""Duplicates replayed by the edge vs unique requests through the edge to
Herald's real announce mutation (issue 16 item 8).

On the bench stack (SecantusDB with durable commits, the broker, one whole
Herald in this process), starts redis-server and one nginx edge
(`--workers` processes) in front of Herald's port. Then, from the load
process (a keep-alive HTTP/1.1 pool on uvloop, tests/edge/httpclient.py),
with the same `--connections` and an operator's token, alternating for
`--rounds` rounds:

- **unique**: the website portal's `PortalAnnounce` (contract/operations/
  portal.graphql), each request with a fresh Idempotency-Key and its own
  reference: the edge claims the key in Redis, Herald runs the command (its
  own idempotency record, the event, the outbox: durable writes), the edge
  stores the answer;
- **duplicates**: one such request, then every request repeats its key and
  body: the edge answers each from Redis (`Idempotent-Replayed: true`, the
  first answer byte for byte) without reaching Herald.

Each phase stops after `--unique` / `--duplicates` requests or `--seconds`,
whichever comes first; the medians and their ratio are reported, with the
edge's own counters (replays, fail-opens: a duplicate the edge let through
is replayed by Herald's own check instead).

    .venv/bin/python -m bench.edge_replay [--unique 1000] [--duplicates 20000]
        [--connections 20] [--seconds 20] [--rounds 3] [--broker kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass

from graphql import OperationDefinitionNode, parse

from bench.figures import Figure, Result, print_result
from bench.load import LoadProcess, run_fast
from bench.stack import BenchStack, add_stack_arguments, bench_stack, edge_in_front
from domain.principal import ROLE_OPERATOR
from edge import EdgeServer
from edge.server import http_get, parse_metrics
from queries.allowlist import DEFAULT_OPERATIONS, normalized_operation
from tests.edge.httpclient import RawHTTPPool

PATH = "Herald's announce"


def announce_operation() -> str:
    """`PortalAnnounce` of the portal's operations, alone (as a client sends it)."""
    document = parse((DEFAULT_OPERATIONS / "portal.graphql").read_text())
    (operation,) = (
        d
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode) and d.name and d.name.value == "PortalAnnounce"
    )
    return normalized_operation(document, operation)


@dataclass(frozen=True)
class Phase:
    """`requests` announces to `port` over `connections` connections, stopping
    after `seconds`. `duplicate`: every request repeats one key and body."""

    port: int
    connections: int
    requests: int
    seconds: float
    token: str
    query: str
    name: str  # unique per phase: the references and keys are made from it
    duplicate: bool = False

    def key(self, n: int) -> str:
        return f"{self.name}-dup" if self.duplicate else f"{self.name}-{n}"

    def body(self, n: int) -> bytes:
        reference = f"BENCH-EDGE-{self.name}-{'DUP' if self.duplicate else n}"
        terms = {
            "reference": reference,
            "eventType": "DVCA",
            "mandatoryVoluntary": "MAND",
            "isin": "RU0009029540",
            "announcementDate": "2027-05-20",
            "recordDate": "2027-06-15",
            "paymentDate": "2027-06-29",
            "grossRate": {"amount": "33.30", "currency": "RUB"},
        }
        payload = {"query": self.query, "variables": {"input": terms}}
        return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class PhaseRate:
    rate: float  # answers per second
    answers: int
    replayed: int  # answers with Idempotent-Replayed: true


async def _run_phase(phase: Phase) -> PhaseRate:
    numbers = iter(range(phase.requests))
    answers = replayed = 0
    first: bytes | None = None
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {phase.token}"}
    async with RawHTTPPool("127.0.0.1", phase.port, connections=phase.connections) as pool:
        if phase.duplicate:  # the first of the key: Herald runs it
            response = await pool.post(
                "/graphql", phase.body(0), {**headers, "Idempotency-Key": phase.key(0)}
            )
            first = response.body
        started = time.perf_counter()
        deadline = started + phase.seconds

        async def client() -> None:
            nonlocal answers, replayed
            for n in numbers:
                if time.perf_counter() > deadline:
                    return
                response = await pool.post(
                    "/graphql", phase.body(n), {**headers, "Idempotency-Key": phase.key(n)}
                )
                body = response.json()
                if response.status != 200 or not isinstance(body, dict) or body.get("errors"):
                    raise RuntimeError(f"{response.status}: {response.body[:300]!r}")
                if first is not None and response.body != first:
                    raise RuntimeError("a duplicate got another answer than the first")
                answers += 1
                replayed += response.headers.get("idempotent-replayed") == "true"

        await asyncio.gather(*(client() for _ in range(phase.connections)))
        elapsed = time.perf_counter() - started
    return PhaseRate(answers / elapsed, answers, replayed)


def run_phase(phase: Phase) -> PhaseRate:
    """Run `phase` (in the load process)."""
    return run_fast(_run_phase(phase))


async def _edge_counters(edge: EdgeServer) -> dict[str, float]:
    address = edge.config.status_address
    assert address is not None
    status, text = await http_get(*address, "/edge-metrics")
    return parse_metrics(text.decode()) if status == 200 else {}


def _counter(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


async def measure(
    stack: BenchStack,
    load_process: LoadProcess,
    *,
    unique: int = 1000,
    duplicates: int = 20000,
    connections: int = 20,
    seconds: float = 20.0,
    workers: int = 2,
    rounds: int = 3,
) -> Result:
    """The phases of the module's docstring against `stack`'s Herald."""
    result = Result(
        "edge",
        sizes={
            "unique": unique,
            "duplicates": duplicates,
            "seconds": seconds,
            "rounds": rounds,
            "connections": connections,
            "nginx_workers": workers,
        },
    )
    token = stack.issuer.mint("bench-edge", roles=(ROLE_OPERATOR,))
    query = announce_operation()
    run_id = uuid.uuid4().hex[:8]
    with edge_in_front(stack.herald, name="bench", workers=workers) as edge:
        port = edge.config.listen_address[1]

        def phase(name: str, count: int, duplicate: bool) -> Phase:
            return Phase(
                port, connections, count, seconds, token, query, f"{run_id}{name}", duplicate
            )

        # warm-up: connections, Lua code caches, Redis pools, Herald's caches
        await load_process.run(run_phase, phase("w", 2 * connections, False))
        before = await _edge_counters(edge)
        unique_runs: list[PhaseRate] = []
        duplicate_runs: list[PhaseRate] = []
        for r in range(rounds):
            unique_runs.append(await load_process.run(run_phase, phase(f"u{r}", unique, False)))
            duplicate_runs.append(
                await load_process.run(run_phase, phase(f"d{r}", duplicates, True))
            )
        after = await _edge_counters(edge)
        log_tail = edge.error_log_tail(5)

    if any(run.replayed for run in unique_runs):
        raise RuntimeError("a unique announce was answered as a replay")
    if any(run.replayed != run.answers for run in duplicate_runs):
        raise RuntimeError("a duplicate was not answered as a replay")
    replay_rate = statistics.median(run.rate for run in duplicate_runs)
    unique_rate = statistics.median(run.rate for run in unique_runs)
    result.add(
        Figure(
            f"edge replay of duplicates ({PATH})",
            replay_rate,
            "req/s",
            "unique requests through the edge to the app",
            unique_rate,
            "≥ 5×",
        )
    )
    replays = _counter(after, "herald_edge_replays_total") - _counter(
        before, "herald_edge_replays_total"
    )
    fail_opens = _counter(after, "herald_edge_fail_opens_total") - _counter(
        before, "herald_edge_fail_opens_total"
    )
    result.notes.append(
        f"{rounds} rounds; unique announces answered: {[r.answers for r in unique_runs]}, "
        f"duplicates: {[r.answers for r in duplicate_runs]} ({connections} keep-alive "
        f"connections, an operator's token); replayed by the edge: {replays:.0f} of "
        f"{sum(r.answers for r in duplicate_runs)} duplicates; edge fail-opens (left to "
        f"Herald's own idempotency check): {fail_opens:.0f}"
    )
    if log_tail.strip():
        result.notes.append(f"edge error log: {log_tail.strip().splitlines()[-1][:200]}")
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.edge_replay", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--unique", type=int, default=1000, help="unique announces per round")
    parser.add_argument("--duplicates", type=int, default=20000, help="duplicates per round")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0, help="bound of each phase")
    parser.add_argument("--workers", type=int, default=2, help="nginx worker processes")
    parser.add_argument("--rounds", type=int, default=3)
    add_stack_arguments(parser)
    args = parser.parse_args()
    async with (
        bench_stack("edge", broker=args.broker, keep=args.keep) as stack,
        LoadProcess() as load_process,
    ):
        result = await measure(
            stack,
            load_process,
            unique=args.unique,
            duplicates=args.duplicates,
            connections=args.connections,
            seconds=args.seconds,
            workers=args.workers,
            rounds=args.rounds,
        )
    print_result(result, store="SecantusDB", broker=args.broker)


if __name__ == "__main__":
    asyncio.run(main())
