"""Notice fan-out: one corporate action on a security held by N accounts.

Starts SecantusDB (data folder, sync-on-commit) and Apache Kafka 4 (or Tansu
with ``--broker tansu``) on loopback, and one whole Herald (API, relay and
projectors) in this process; then, in one run:

1. records positions of N accounts (one ISIN, one date; every 20th holds 0)
   through ``CommandHandlers.record_positions`` — in a child process, so the
   100 000-position payload does not inflate this process's peak RSS — and
   waits until the projectors have consumed that event;
2. announces and approves (a different subject) a DVCA on that ISIN/date, and
   measures from the approval's acceptance (the handler returned: the event is
   in the outbox) to the last notice stored: outbox → relay → Kafka →
   NoticeProjector → SecantusDB. The end is when the projector's counter
   (``herald_notices_written_total``, moved after its last acknowledged bulk
   write) reaches the holders' count; one ``count_documents`` then confirms
   every notice is visible. (Polling counts instead would distort the figure:
   on SecantusDB one count over 20 000 notices takes over a second.) Progress
   is printed from ``herald_fanout_accounts_remaining``;
3. copies the produced notice documents into another collection of the same
   store with raw ``insert_many`` in chunks of 5000 (the same secondary indexes as
   ``notices``) — the store's bulk-write floor — and prints the ratio;
4. repeats approval → last notice for several small sets (distinct ISINs and
   dates) for p50/p99;
5. samples peak RSS (``getrusage``) at each stage, and the current RSS
   (``/proc/self/statm``) during the fan-out, to show memory stays bounded.

Commands go through the handlers in-process (not GraphQL): the clock starts
when the approval is accepted, so the HTTP layer is not part of the figure.

    .venv/bin/python -m bench.notices_fanout [--accounts 100000] [--broker kafka|tansu]
        [--no-dispatcher] [--commands] [--profile-store /tmp/store.raw]

``--commands`` counts the store commands per notice during the big fan-out
(a global ``pymongo.monitoring`` listener installed before the stack starts,
so it sees every client in this process: relay, projectors, dispatcher,
checkpoints); ``--profile-store`` records the store process with py-spy for
the fan-out's duration (raw format; needs ``py-spy`` in the venv).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from multiprocessing import get_context
from typing import Any

import pymongo
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import PyMongoError
from stdnum import isin as stdnum_isin

from adapters.mongo.client import Document, connect
from adapters.mongo.event_store import MongoEventStore
from adapters.mongo.notice_projection import NOTICES
from adapters.mongo.positions import MongoPositionStore
from bench.figures import Figure, Result, print_result
from bench.stack import (
    APPROVER,
    OPERATOR,
    BenchStack,
    add_stack_arguments,
    bench_stack,
    pct,
    settled,
)
from commands.handlers import CommandHandlers
from devstack.herald import RunningHerald

RAW = "bench_raw_notices"
COPY_CHUNK = 5000
BIG_ISIN = "RU0009029540"
BIG_DATE = date(2026, 12, 15)
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --- positions ------------------------------------------------------------------


def holding(n: int) -> tuple[str, str]:
    """(quantity, tax rate %) of account n; every 20th account holds nothing."""
    quantity = "0" if n % 20 == 0 else str(n % 997 + 1)
    return quantity, ("13", "15", "0", "30")[n % 4]


def holders(accounts: int) -> int:
    return sum(1 for n in range(accounts) if holding(n)[0] != "0")


def positions_payload(isin: str, as_of: date, accounts: int) -> dict[str, Any]:
    positions = []
    for n in range(accounts):
        quantity, tax = holding(n)
        positions.append({"accountId": f"ACC-{n:07d}", "quantity": quantity, "taxRatePercent": tax})
    return {"isin": isin, "asOf": as_of.isoformat(), "positions": positions}


async def _record(uri: str, database: str, isin: str, as_of: date, accounts: int) -> float:
    client = connect(uri)
    try:
        db = client[database]
        handlers = CommandHandlers(MongoEventStore(db), MongoPositionStore(db))
        payload = positions_payload(isin, as_of, accounts)
        started = time.perf_counter()
        await handlers.record_positions(payload, OPERATOR)
        return time.perf_counter() - started
    finally:
        await client.close()


def record_in_child(uri: str, database: str, isin: str, as_of: date, accounts: int) -> float:
    """Runs in a spawned child; the Herald's relay picks the event up by polling."""
    return asyncio.run(_record(uri, database, isin, as_of, accounts))


# --- measuring ------------------------------------------------------------------


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE / 2**20


def notices_written() -> float:
    return REGISTRY.get_sample_value("herald_notices_written_total") or 0.0


def fanout_remaining() -> float:
    value = REGISTRY.get_sample_value("herald_fanout_accounts_remaining", {"projection": "notices"})
    return value or 0.0


class CommandCounter(monitoring.CommandListener):
    """Store commands (name, collection) started by any client in this
    process while `counting` is set, and the seconds they took."""

    def __init__(self) -> None:
        self.counting = False
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self._names: dict[tuple[int, Any], str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.counting:
            return
        target = event.command.get(event.command_name)
        name = event.command_name
        if isinstance(target, str) and name not in ("getMore", "commitTransaction"):
            name = f"{name} {target}"
        elif name == "getMore":
            name = f"getMore {event.command.get('collection')}"
        self.counts[name] = self.counts.get(name, 0) + 1
        self._names[event.request_id, event.connection_id] = name

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._ended(event.request_id, event.connection_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._ended(event.request_id, event.connection_id, event.duration_micros)

    def _ended(self, request_id: int, connection: Any, micros: int) -> None:
        name = self._names.pop((request_id, connection), None)
        if name is not None:
            self.seconds[name] = self.seconds.get(name, 0.0) + micros / 1e6


COMMANDS = CommandCounter()


@dataclass
class Phases:
    """Time spent in the projector's store calls (wrapped on the live instances)."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # label → last error
    first_start: float | None = None
    last_end: float = 0.0

    def wrap(self, target: object, method: str, label: str) -> None:
        inner: Callable[..., Awaitable[Any]] = getattr(target, method)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            if self.first_start is None:
                self.first_start = started
            try:
                return await inner(*args, **kwargs)
            except Exception as exc:  # the runner retries it; the report names it
                self.failures[label] = f"{type(exc).__name__}: {exc}"[:200]
                raise
            finally:
                self.last_end = time.perf_counter()
                self.seconds[label] = self.seconds.get(label, 0.0) + self.last_end - started
                self.calls[label] = self.calls.get(label, 0) + 1

        setattr(target, method, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.failures.clear()
        self.first_start = None
        self.last_end = 0.0


def terms(isin: str, record_date: date) -> dict[str, Any]:
    return {
        "reference": f"BENCH-FANOUT-{uuid.uuid4().hex[:12]}",
        "eventType": "DVCA",
        "mandatoryVoluntary": "MAND",
        "isin": isin,
        "announcementDate": (record_date - timedelta(days=20)).isoformat(),
        "recordDate": record_date.isoformat(),
        "paymentDate": (record_date + timedelta(days=14)).isoformat(),
        "grossRate": {"amount": "33.30", "currency": "RUB"},
    }


@dataclass
class FanOut:
    action_id: str
    seconds: float  # approval accepted → last notice visible
    first_visible: float  # approval accepted → first notice visible
    peak_rss_during: float
    rss_at_start: float


async def approve_and_wait(
    herald: RunningHerald,
    notices: Any,
    isin: str,
    record_date: date,
    expected: int,
    *,
    poll: float,
    progress_every: float | None = None,
) -> FanOut:
    handlers = herald.services.handlers
    announced = await handlers.announce(terms(isin, record_date), OPERATOR)
    action_id = announced.action.id
    await settled(herald)
    gc.collect()
    rss_start = rss_mib()
    rss_peak = rss_start
    written_before = notices_written()
    await handlers.approve(action_id, 1, APPROVER)
    accepted = time.perf_counter()
    first: float | None = None
    next_report = accepted + (progress_every or 0)
    deadline = accepted + 60 + expected / 250
    # No count_documents while the fan-out runs: on SecantusDB one count over
    # 20 000 notices takes over a second and would compete with the projector.
    # The projector's own counter moves once its last bulk write is acknowledged.
    while notices_written() - written_before < expected:
        rss_peak = max(rss_peak, rss_mib())
        if first is None:
            try:
                with pymongo.timeout(5.0):
                    found = await notices.find_one({"corporateActionId": action_id}, {"_id": 1})
                if found:
                    first = time.perf_counter() - accepted
            except PyMongoError as exc:  # a saturated store: report, keep waiting
                print(f"  (store did not answer a point lookup: {exc})", flush=True)
        now = time.perf_counter()
        if progress_every is not None and now >= next_report:
            next_report = now + progress_every
            print(
                f"  t={now - accepted:6.1f}s  herald_fanout_accounts_remaining="
                f"{fanout_remaining():>7.0f}  rss={rss_mib():6.1f} MiB",
                flush=True,
            )
        if now > deadline:
            raise TimeoutError(
                f"{notices_written() - written_before:.0f}/{expected} notices written "
                f"after {now - accepted:.0f}s"
            )
        await asyncio.sleep(poll)
    done = time.perf_counter() - accepted
    visible = await notices.count_documents({"corporateActionId": action_id})
    assert visible == expected, f"{visible} notices visible, expected {expected}"
    return FanOut(action_id, done, first if first is not None else done, rss_peak, rss_start)


async def raw_copy(db: Any, action_id: str) -> tuple[int, float]:
    """insert_many the produced notice documents into another collection; (docs, seconds)."""
    raw = db[RAW]
    await raw.drop()
    # The same secondary indexes as `notices` (the projector's and the
    # depositors' list's, read from the store): a like-for-like write floor.
    async for index in await db[NOTICES].list_indexes():
        if index["name"] != "_id_":
            await raw.create_index(list(index["key"].items()), name=index["name"])
    cursor = db[NOTICES].find({"corporateActionId": action_id}, batch_size=COPY_CHUNK)
    copied = 0
    spent = 0.0
    chunk: list[Document] = []

    async def flush() -> None:
        nonlocal copied, spent
        started = time.perf_counter()
        await raw.insert_many(chunk, ordered=False)
        spent += time.perf_counter() - started
        copied += len(chunk)
        chunk.clear()

    async for doc in cursor:
        chunk.append(doc)
        if len(chunk) == COPY_CHUNK:
            await flush()
    if chunk:
        await flush()
    return copied, spent


def valid_isin(n: int) -> str:
    body = f"RU000BNC{n:03d}"
    return body + stdnum_isin.calc_check_digit(body)


async def measure(
    stack: BenchStack,
    *,
    accounts: int = 100_000,
    runs: int = 5,
    run_accounts: int = 2000,
    progress: bool = True,
    profile_store: str | None = None,
    raw: bool = True,
) -> Result:
    """Fan-out of one action to `accounts` holders against raw `insert_many`
    of the same documents; approval → last notice for `runs` small fan-outs
    of `run_accounts`; peak RSS at each stage (see the module's docstring)."""
    result = Result(
        "fan-out", sizes={"accounts": accounts, "runs": runs, "run_accounts": run_accounts}
    )
    rss: list[tuple[str, float]] = [("start", peak_rss_mib())]
    herald, store, settings = stack.herald, stack.store, stack.settings
    phases = Phases()
    for target, method, label in (
        (herald.services.positions, "accounts", "positions.accounts (distinct)"),
        (herald.services.positions, "holdings", "positions.holdings (find $in)"),
        (herald.services.positions, "boundaries", "positions.boundaries"),
        (herald.services.positions, "between", "positions.between (range)"),
        (
            herald.services.notice_projection,
            "reconcile_range",
            "notices.reconcile_range (txn)",
        ),
    ):
        if hasattr(target, method):  # whichever the projector's stores offer
            phases.wrap(target, method, label)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(store.uri, timeoutMS=120_000)
    db = mongo[settings.mongo_database]
    notices = db[NOTICES]
    rss.append(("Herald started", peak_rss_mib()))
    try:
        expected = holders(accounts)
        print(f"recording positions of {accounts} accounts ({expected} hold > 0) …", flush=True)
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            record_seconds = await loop.run_in_executor(
                pool,
                record_in_child,
                store.uri,
                settings.mongo_database,
                BIG_ISIN,
                BIG_DATE,
                accounts,
            )
        await settled(herald)
        result.notes.append(
            f"record_positions: {record_seconds:.1f}s "
            f"({accounts / record_seconds:,.0f} positions/s, in a child process)"
        )
        rss.append(("positions recorded", peak_rss_mib()))

        print("approving a DVCA on that ISIN/date; waiting for every notice …", flush=True)
        phases.reset()
        spy = None
        if profile_store and store.process.pid is not None:
            spy = _py_spy(store.process.pid, profile_store)
        COMMANDS.counts.clear()
        COMMANDS.seconds.clear()
        COMMANDS.counting = True
        try:
            big = await approve_and_wait(
                herald,
                notices,
                BIG_ISIN,
                BIG_DATE,
                expected,
                poll=0.05,
                progress_every=2.0 if progress else None,
            )
        except TimeoutError:
            print("the fan-out did not finish; the projector's store calls so far:")
            for label, seconds in phases.seconds.items():
                print(f"  {label:<32} {seconds:7.2f} s in {phases.calls[label]} calls")
            for label, error in phases.failures.items():
                print(f"  {label:<32} failed (retried by the runner): {error}")
            raise
        finally:
            COMMANDS.counting = False
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes what it sampled
                await asyncio.to_thread(spy.wait, 60)
        rss.append(("after fan-out", peak_rss_mib()))
        reconcile = (phases.last_end - phases.first_start) if phases.first_start else 0.0
        breakdown = dict(phases.seconds)
        calls = dict(phases.calls)

        copied, raw_seconds = expected, 0.0
        if raw:
            copied, raw_seconds = await raw_copy(db, big.action_id)
            assert copied == expected, (copied, expected)
            rss.append(("after raw copy", peak_rss_mib()))

        small: list[FanOut] = []
        run_expected = holders(run_accounts)
        for n in range(runs):
            isin, as_of = valid_isin(n), BIG_DATE + timedelta(days=n + 1)
            await herald.services.handlers.record_positions(
                positions_payload(isin, as_of, run_accounts), OPERATOR
            )
            await settled(herald)
            small.append(
                await approve_and_wait(herald, notices, isin, as_of, run_expected, poll=0.005)
            )
        rss.append((f"after {runs} small runs", peak_rss_mib()))
    finally:
        await mongo.close()

    rate = expected / big.seconds
    raw_rate = copied / raw_seconds if raw_seconds else None
    result.add(
        Figure(
            f"notice fan-out, {expected:,} holders",
            rate,
            "notices/s",
            "raw insert_many of the same documents" if raw else None,
            raw_rate,
            "≥ 0.9×",
        )
    )
    notes = result.notes
    notes.append(
        f"fan-out of {expected} notices: approval → first notice {big.first_visible:.2f} s, "
        f"→ last {big.seconds:.2f} s; raw insert_many {raw_seconds:.2f} s"
    )
    if reconcile:
        notes.append(
            f"projector reconcile only: {expected / reconcile:,.0f} notices/s "
            f"({reconcile:.2f} s from reading accounts to the last bulk write)"
        )
        io = 0.0
        for label, seconds in breakdown.items():
            io += seconds
            notes.append(f"  {label:<32} {seconds:7.2f} s in {calls[label]} calls")
        notes.append(f"  {'plan/derive/build (the rest)':<32} {max(reconcile - io, 0):7.2f} s")
    if small and raw_rate:
        latencies = [r.seconds * 1000 for r in small]
        # the store's own floor for those notices: raw insert_many at the rate above
        floor = f"raw insert_many of {run_expected:,} such documents"
        floor_ms = run_expected / raw_rate * 1000
        result.add(
            Figure(
                f"approval → last of {run_expected:,} notices visible, p50",
                pct(latencies, 50),
                "ms",
                floor,
                floor_ms,
            ),
            Figure(
                f"approval → last of {run_expected:,} notices visible, p99",
                pct(latencies, 99),
                "ms",
                floor,
                floor_ms,
                goal="≤ 300 ms",
            ),
        )
        notes.append(
            f"approval → last notice, {len(small)} runs × {run_expected} notices: "
            f"min {min(latencies):.0f} ms, max {max(latencies):.0f} ms, "
            f"mean {statistics.fmean(latencies):.0f} ms"
        )
    if COMMANDS.counts:
        spent = COMMANDS.seconds
        notes.append(
            f"store commands during the fan-out of {expected} (per 1 000 notices, seconds): "
            + ", ".join(
                f"{name} {count} ({count * 1000 / expected:.1f}) {spent.get(name, 0):.2f} s"
                for name, count in sorted(
                    COMMANDS.counts.items(), key=lambda kv: -spent.get(kv[0], 0)
                )
            )
        )
    notes.append(
        "peak RSS (this process: Herald + bench): "
        + ", ".join(f"{label} {peak:.0f} MiB" for label, peak in rss)
    )
    notes.append(
        f"current RSS during the big fan-out: {big.rss_at_start:.1f} MiB at approval, "
        f"peak {big.peak_rss_during:.1f} MiB (+{big.peak_rss_during - big.rss_at_start:.1f} MiB)"
    )
    return result


def _py_spy(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` until interrupted (raw, 250 Hz)."""
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    return subprocess.Popen(
        [spy, "record", "-r", "250", "-f", "raw", "-o", output, "-p", str(pid)],
        stdout=subprocess.DEVNULL,
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    add_stack_arguments(parser)
    parser.add_argument("--runs", type=int, default=5, help="small fan-outs for p50/p99")
    parser.add_argument("--run-accounts", type=int, default=2000)
    parser.add_argument(
        "--no-dispatcher",
        action="store_true",
        help="without the delivery dispatcher (which marks the same notices delivered meanwhile)",
    )
    parser.add_argument(
        "--commands", action="store_true", help="count the store commands per notice"
    )
    parser.add_argument(
        "--profile-store", metavar="RAW", help="py-spy the store process during the fan-out"
    )
    parser.add_argument(
        "--push-url",
        help="turn the PUSH channel on (an endpoint that is never called: the holders have "
        "no preferences, so the planner marks each notice delivered itself)",
    )
    parser.add_argument(
        "--no-raw",
        action="store_true",
        help="skip the raw insert_many copy (e.g. for peak RSS at 1 000 000 holders)",
    )
    args = parser.parse_args()
    if args.commands:
        monitoring.register(COMMANDS)  # before any client exists: it then sees them all
    async with bench_stack(
        "fanout",
        broker=args.broker,
        keep=args.keep,
        kafka_session_timeout_ms=6000,
        run_dispatcher=not args.no_dispatcher,
        push_url=args.push_url,
        delivered_at_issue=args.push_url is None,  # declared: no outbound channel here
    ) as stack:
        print(
            f"store: SecantusDB {stack.store.uri} (data folder, sync-on-commit); broker: "
            f"{args.broker} ({stack.bootstrap_servers}); Herald (API+relay+projectors) in this "
            "process",
            flush=True,
        )
        result = await measure(
            stack,
            accounts=args.accounts,
            runs=args.runs,
            run_accounts=args.run_accounts,
            profile_store=args.profile_store,
            raw=not args.no_raw,
        )
    print_result(result, store="SecantusDB (sync-on-commit, data folder)", broker=args.broker)


if __name__ == "__main__":
    asyncio.run(main())
