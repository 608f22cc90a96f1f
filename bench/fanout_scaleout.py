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
   up front, their ids picked so the workers get equal parts (below), waits
   until the workers have consumed the announcements, approves the actions
   one after the other and measures from the first
   approval accepted to the last of their notices stored (the actions'
   counts kept beside the notices reach the holders);
3. stops the workers.

The work is shared by partition: an approval is keyed by its action, so one
action's fan-out is done by the one member holding its partition, and a
second worker takes over whole actions. Action ids are random (ULIDs), so
the bench picks them: once the workers have split the group, it reads each
member's partitions of the corporate-actions topic from its log, sets a
part per member (`KeyPicker`: the actions shared equally between the
members, each member's spread over its partitions) and announces until each
part is kept, placing every id with the producer's own partitioner
(aiokafka's murmur2 `DefaultPartitioner`); the announcements it does not
keep stay drafts, which the fan-out ignores. The stack has `PARTITIONS` (6)
partitions a topic, so the round-robin assignor gives each of two members 3
of them and 6 actions land one a partition.

The figure is notices/s with 2 workers against 1 in the same run; the notes
give each worker's partitions, the actions and notices it fanned out and the
CPU each process used (the store is one process: when it is the bottleneck,
a second worker waits on it). A run where one worker did less than
`SPREAD_FLOOR` of the notices, or the group rebalanced during the fan-out,
is marked "not spread" in the figure's path: its ratio measures nothing.

    .venv/bin/python -m bench.fanout_scaleout [--actions 6] [--accounts 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner

from adapters.kafka.topics import topic_for
from bench.figures import Figure, Result, print_result
from bench.notices_fanout import holders, positions_payload, terms, valid_isin
from bench.stack import APPROVER, OPERATOR, BenchStack, add_stack_arguments, bench_stack
from devstack.process import ManagedProcess
from devstack.workers import assignments, current, split, worker_env
from domain.consistency import CARDS_PROJECTION, NOTICES_PROJECTION
from domain.events import AGGREGATE_CORPORATE_ACTION
from projections.notices import NoticeProjector

HERALD = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "herald"
FIRST_DATE = date(2027, 3, 1)
_TICKS = os.sysconf("SC_CLK_TCK")
PARTITIONS = 6  # a topic's: the round-robin assignor gives each of 2 members 3
SPREAD_FLOOR = 0.25  # a worker with a smaller share of the notices: "not spread"
MAX_TRIES_PER_ACTION = 40  # announcements per kept action before giving up


def partition_of(key: str, partitions: int) -> int:
    """The partition (0 … partitions-1) the producer puts a record keyed
    `key` on: aiokafka's `DefaultPartitioner`, murmur2 of the UTF-8 key as
    Kafka's Java client computes it (adapters/kafka/publisher.py keys every
    event by its aggregate id)."""
    ids = list(range(partitions))
    return int(DefaultPartitioner()(key.encode(), ids, ids))


class KeyPicker:
    """Picks action ids so the members of a consumer group holding `shares`
    (each member's partitions of the action topic) fan out equal numbers of
    `actions`: a member's part is `actions` ÷ members holding a partition
    (the first ones take the remainder; one holding none gets none), at most
    ⌈part ÷ its partitions⌉ on one partition (so distinct partitions while
    the part is no larger than its share). Offer keys until `done`.

    ValueError when no member holds a partition, or two hold the same one."""

    def __init__(self, shares: Sequence[Collection[int]], actions: int, partitions: int) -> None:
        held = [share for share in shares if share]
        if not held:
            raise ValueError("no member holds a partition of the action topic")
        if sum(map(len, held)) != len(set().union(*held)):
            raise ValueError(f"a partition is held twice: {[sorted(s) for s in held]}")
        self.partitions = partitions
        base, extra = divmod(actions, len(held))
        self.member_of = {p: n for n, share in enumerate(shares) for p in share}
        self.wanted: dict[int, int] = {}  # member → actions still to keep
        self.cap: dict[int, int] = {}  # partition → most actions on it
        rank = 0  # among the members holding a partition
        for member, share in enumerate(shares):
            part = base + (rank < extra) if share else 0
            rank += bool(share)
            self.wanted[member] = part
            for partition in share:
                self.cap[partition] = -(-part // len(share))  # ⌈part ÷ len(share)⌉
        self.on: Counter[int] = Counter()  # partition → actions kept on it
        self.kept: list[str] = []
        self.refused = 0

    def offer(self, key: str) -> bool:
        """Keep `key` when its partition's member still wants an action and
        the partition is below its cap; False (counted in `refused`) otherwise."""
        partition = partition_of(key, self.partitions)
        member = self.member_of.get(partition)
        if member is None or not self.wanted[member] or self.on[partition] >= self.cap[partition]:
            self.refused += 1
            return False
        self.wanted[member] -= 1
        self.on[partition] += 1
        self.kept.append(key)
        return True

    @property
    def done(self) -> bool:
        return not any(self.wanted.values())


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
    partitions_per_worker: list[list[int]]  # each worker's corporate-actions partitions
    actions_per_worker: list[int]
    notices_per_worker: list[int]
    drafts: int  # announcements not kept (their partition was full)
    rebalanced: bool  # the group's assignment changed during the fan-out
    cpu: dict[str, float]  # process → CPU seconds during the fan-out

    @property
    def rate(self) -> float:
        return self.notices / self.seconds

    @property
    def spread(self) -> bool:
        """Every worker fanned out at least SPREAD_FLOOR of the notices (and
        the split held for the whole fan-out)."""
        total = sum(self.notices_per_worker)
        return not self.rebalanced and all(
            n >= SPREAD_FLOOR * total for n in self.notices_per_worker
        )

    def describe(self) -> str:
        total = sum(self.notices_per_worker) or 1
        split = "; ".join(
            f"worker {n}: partitions {parts}, {actions} actions, {notices} notices "
            f"({notices / total:.0%})"
            for n, (parts, actions, notices) in enumerate(
                zip(
                    self.partitions_per_worker,
                    self.actions_per_worker,
                    self.notices_per_worker,
                    strict=True,
                )
            )
        )
        return split + ("; REBALANCED during the fan-out" if self.rebalanced else "")


async def announce_spread(
    stack: BenchStack, pairs: list[tuple[str, date]], picker: KeyPicker
) -> list[str]:
    """Announce on `pairs` (one kept action each, in order) until `picker`
    has its quota; an announcement it refuses stays a draft on the same pair
    (a draft is neither approved nor fanned out). RuntimeError after
    MAX_TRIES_PER_ACTION announcements a kept action."""
    handlers = stack.herald.services.handlers
    announced: list[str] = []
    while not picker.done:
        if len(announced) >= MAX_TRIES_PER_ACTION * len(pairs):
            raise RuntimeError(f"{len(announced)} announcements left {picker.wanted} unkept")
        pair = pairs[len(picker.kept)]
        action_id = (await handlers.announce(terms(*pair), OPERATOR)).action.id
        announced.append(action_id)
        picker.offer(action_id)
    # the workers consume the drafts before the clock starts, not during the fan-out
    state = stack.herald.services.projection_state
    deadline = time.monotonic() + 60
    for projection in (NOTICES_PROJECTION, CARDS_PROJECTION):
        while len(await state.applied_versions(projection, announced)) < len(announced):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the workers' {projection} projection missed announcements")
            await asyncio.sleep(0.1)
    return picker.kept


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
        # each worker's partitions of the approvals' topic, and actions keyed onto them
        topic = topic_for(settings.kafka_topic_prefix, AGGREGATE_CORPORATE_ACTION)
        rounds = [len(assignments(p, group)) for p in processes]
        held = [sorted(n for t, n in current(p, group) if t == topic) for p in processes]
        picker = KeyPicker(held, len(pairs), settings.kafka_partitions)
        announced = await announce_spread(stack, pairs, picker)
        worker_of = {partition: n for n, share in enumerate(held) for partition in share}
        owner = {a: worker_of[partition_of(a, settings.kafka_partitions)] for a in announced}
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
        actions_per_worker, notices_per_worker = [0] * workers, [0] * workers
        for action_id, n in owner.items():
            actions_per_worker[n] += 1
            notices_per_worker[n] += counts.get(action_id, (0, 0, 0))[0]
        return Phase(
            workers,
            expected,
            seconds,
            held,
            actions_per_worker,
            notices_per_worker,
            picker.refused,
            rebalanced=[len(assignments(p, group)) for p in processes] != rounds,
            cpu=cpu,
        )
    finally:
        for process in processes:
            process.stop(timeout=10)


async def measure(
    stack: BenchStack, *, actions: int = 6, accounts: int = 5_000, progress: bool = True
) -> Result:
    """notices/s of `actions` concurrent fan-outs with 2 workers against 1."""
    sizes = {
        "actions": actions,
        "accounts": accounts,
        "partitions": stack.settings.kafka_partitions,
    }
    result = Result("fan-out scale-out", sizes=sizes)
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
            phase = phases[workers]
            print(f"  {phase.rate:,.0f} notices/s; {phase.describe()}", flush=True)
    one, two = phases[1], phases[2]
    result.add(
        Figure(
            f"notice fan-out, {actions} actions × {each:,} holders, 2 workers"
            + ("" if two.spread else " (NOT SPREAD)"),
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
            f"{phase.workers} worker(s): {phase.notices} notices in {phase.seconds:.1f} s "
            f"({phase.drafts} announcements left as drafts to key the actions); "
            f"{phase.describe()}; CPU s during it: {cpu}"
        )
    if not two.spread:
        result.notes.append(
            f"NOT SPREAD: a worker fanned out less than {SPREAD_FLOOR:.0%} of the notices "
            "(or the group rebalanced): the 2-worker figure measures one worker"
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
        kafka_partitions=PARTITIONS,
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
