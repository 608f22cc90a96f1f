"""Fan-out scale-out: two `herald worker` processes against one (issue 16, item 9).

Starts the bench stack (SecantusDB with sync-on-commit, the broker) with the
in-process Herald serving the API and the relay only (projectors and
dispatcher off), then for 1 and then 2 workers:

1. starts that many `herald worker` processes (the projectors; each
   projector a member of its consumer group) and waits until they have split
   the notices group's partitions between them (read from their logs,
   devstack.workers);
2. announces `actions` DVCAs, each on its own ISIN/record date whose
   positions (`accounts` accounts, every 20th holding nothing) were recorded
   up front, approves them one after the other and measures from the first
   approval accepted to the last of their notices stored (the actions'
   counts kept beside the notices reach the holders);
3. stops the workers.

The work is shared by partition: an approval is keyed by its action, so one
action's fan-out is done by the one member holding its partition, and a
second worker takes over whole actions (with 3 partitions: 2 and 1). The
figure is notices/s with 2 workers against 1 in the same run; the notes name
how the actions fell on the workers and the CPU each process used (the
store is one process: when it is the bottleneck, a second worker waits on it).

    .venv/bin/python -m bench.fanout_scaleout [--actions 6] [--accounts 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner

from adapters.kafka.topics import topic_for
from bench.figures import Figure, Result, print_result
from bench.notices_fanout import holders, positions_payload, terms, valid_isin
from bench.stack import APPROVER, OPERATOR, BenchStack, add_stack_arguments, bench_stack
from devstack.process import ManagedProcess
from devstack.workers import current, split, worker_env
from domain.events import AGGREGATE_CORPORATE_ACTION
from projections.notices import NoticeProjector

HERALD = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "herald"
FIRST_DATE = date(2027, 3, 1)
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a live process (0 once it is gone)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


@dataclass
class Phase:
    workers: int
    notices: int
    seconds: float
    actions_per_worker: list[int]
    cpu: dict[str, float]  # process → CPU seconds during the fan-out

    @property
    def rate(self) -> float:
        return self.notices / self.seconds


async def run_phase(
    stack: BenchStack,
    workers: int,
    pairs: list[tuple[str, date]],
    expected_each: int,
    *,
    timeout: float,
) -> Phase:
    herald, settings = stack.herald, stack.settings
    group = f"{settings.projector_group_prefix}.{NoticeProjector.name}"
    partitions = 3 * settings.kafka_partitions  # actions, positions, acknowledgements
    env = {**os.environ, **worker_env(settings)}
    processes = [
        ManagedProcess(f"worker-{workers}-{n}", [str(HERALD), "worker"], stack.work, env=env)
        for n in range(workers)
    ]
    handlers = herald.services.handlers
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + 90
        while not split([current(p, group) for p in processes], partitions):
            for process in processes:
                if not process.is_running:
                    raise RuntimeError(f"{process.name} exited: {process.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {workers} workers did not split {group}")
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # let the last rebalance settle (no in-flight join)
        announced = [(await handlers.announce(terms(*pair), OPERATOR)).action.id for pair in pairs]
        # which worker holds each action's partition (the producer's murmur2 of the id)
        topic = topic_for(settings.kafka_topic_prefix, AGGREGATE_CORPORATE_ACTION)
        ids = list(range(settings.kafka_partitions))
        shares = [current(p, group) for p in processes]
        per_worker = [0] * workers
        for action_id in announced:
            partition = DefaultPartitioner()(action_id.encode(), ids, ids)
            for n, share in enumerate(shares):
                per_worker[n] += (topic, partition) in share
        pids = {p.name: p.pid for p in processes} | {"store": stack.store.process.pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        cpu_before["bench (API, relay)"] = time.process_time()
        started = time.perf_counter()
        for action_id in announced:
            await handlers.approve(action_id, 1, APPROVER)
        expected = expected_each * len(announced)
        done_by = started + timeout
        while True:
            counts = await herald.services.notices.by_action(announced)
            written = sum(total for total, _, _ in counts.values())
            if written >= expected:
                break
            if time.perf_counter() > done_by:
                raise TimeoutError(f"{written}/{expected} notices after {timeout:.0f}s")
            await asyncio.sleep(0.1)
        seconds = time.perf_counter() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["bench (API, relay)"] = time.process_time() - cpu_before["bench (API, relay)"]
        return Phase(workers, expected, seconds, per_worker, cpu)
    finally:
        for process in processes:
            process.stop(timeout=10)


async def measure(
    stack: BenchStack, *, actions: int = 6, accounts: int = 5_000, progress: bool = True
) -> Result:
    """notices/s of `actions` concurrent fan-outs with 2 workers against 1."""
    result = Result("fan-out scale-out", sizes={"actions": actions, "accounts": accounts})
    handlers = stack.herald.services.handlers
    each = holders(accounts)
    plan: dict[int, list[tuple[str, date]]] = {}
    n = 0
    for workers in (1, 2):
        plan[workers] = []
        for _ in range(actions):
            pair = (valid_isin(500 + n), FIRST_DATE + timedelta(days=n))
            n += 1
            await handlers.record_positions(positions_payload(*pair, accounts), OPERATOR)
            plan[workers].append(pair)
    timeout = 120 + actions * each / 100
    phases: dict[int, Phase] = {}
    for workers in (1, 2):
        if progress:
            print(f"{workers} worker(s): {actions} actions × {each} holders …", flush=True)
        phases[workers] = await run_phase(stack, workers, plan[workers], each, timeout=timeout)
        if progress:
            print(f"  {phases[workers].rate:,.0f} notices/s", flush=True)
    one, two = phases[1], phases[2]
    result.add(
        Figure(
            f"notice fan-out, {actions} actions × {each:,} holders, 2 workers",
            two.rate,
            "notices/s",
            "the same with 1 worker",
            one.rate,
            "> 1× (2 cores)",
        )
    )
    for phase in (one, two):
        cpu = ", ".join(f"{name} {seconds:.1f}" for name, seconds in phase.cpu.items())
        result.notes.append(
            f"{phase.workers} worker(s): {phase.notices} notices in {phase.seconds:.1f} s; "
            f"actions per worker {phase.actions_per_worker}; CPU s during it: {cpu}"
        )
    result.notes.append(
        f"machine: {os.cpu_count()} cores, load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    return result


async def run(
    broker: str = "kafka",
    *,
    keep: bool = False,
    actions: int = 6,
    accounts: int = 5_000,
    progress: bool = True,
) -> Result:
    """Its own stack: the in-process Herald serves the API and the relay only."""
    async with bench_stack(
        "fanout-scaleout",
        broker=broker,
        keep=keep,
        kafka_session_timeout_ms=6000,
        run_projectors=False,
        run_dispatcher=False,
    ) as stack:
        return await measure(stack, actions=actions, accounts=accounts, progress=progress)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--actions", type=int, default=6, help="concurrent fan-outs")
    parser.add_argument("--accounts", type=int, default=5_000, help="accounts per action")
    add_stack_arguments(parser)
    args = parser.parse_args()
    result = await run(args.broker, keep=args.keep, actions=args.actions, accounts=args.accounts)
    print_result(result, store="SecantusDB (sync-on-commit, data folder)", broker=args.broker)


if __name__ == "__main__":
    asyncio.run(main())
