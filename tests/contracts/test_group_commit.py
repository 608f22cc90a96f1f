"""Group commit (adapters/mongo/group_commit.py): concurrent commands' durable
writes batched into one, each caller hearing its own outcome.

Beside the ports' contracts: the promises of each append and claim hold when
concurrent callers share one write. The batcher's mapping is checked on its
own (hypothesis: arrivals, per-item failures and cancellations); the event
store's and the idempotency store's batches on the real store (SecantusDB),
where a batch's commands are counted with PyMongo command monitoring
(tests/store_commands.py). Concurrent callers started by one `asyncio.gather`
all queue before the first write starts (asyncio runs ready tasks in order),
so they form one batch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.event_store import EVENTS, MongoEventStore
from adapters.mongo.group_commit import GroupCommit
from adapters.mongo.idempotency import IDEMPOTENCY, MongoIdempotencyStore
from domain.events import EventEnvelope
from domain.idempotency import CallerKey, IdempotencyRecord, StoredResponse
from domain.ports import ConcurrencyError, StoreRefused, StoreUnavailable, UniqueKeyTaken
from tests.builders import bare_event
from tests.store_commands import recording

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RESPONSE = StoredResponse(200, (("content-type", "application/json"),), b'{"data":{}}')


class ItemFailed(Exception):
    """An item's own failure in the batcher's tests."""


# (fails, cancelled) per caller; callers arrive in waves, a wave at a time.
Wave = list[tuple[bool, bool]]


@settings(max_examples=60, deadline=None)
@given(
    waves=st.lists(
        st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=8),
        min_size=1,
        max_size=5,
    ),
    max_batch=st.integers(min_value=1, max_value=5),
)
async def test_each_caller_hears_its_own_outcome_of_the_batches(
    waves: list[Wave], max_batch: int
) -> None:
    callers = [caller for wave in waves for caller in wave]
    batches: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[int | Exception]:
        batches.append(list(items))
        await asyncio.sleep(0)  # in flight: later callers queue
        return [ItemFailed(n) if callers[n][0] else n * 10 for n in items]

    batcher: GroupCommit[int, int] = GroupCommit(write, max_batch=max_batch)
    tasks: list[asyncio.Task[int]] = []
    for wave in waves:
        wave_tasks = [
            asyncio.create_task(batcher.submit(len(tasks) + offset)) for offset in range(len(wave))
        ]
        tasks.extend(wave_tasks)
        await asyncio.sleep(0)  # the wave queues (and a write may start)
        for task, (_, cancelled) in zip(wave_tasks, wave, strict=True):
            if cancelled:
                task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    written = [n for batch in batches for n in batch]
    assert written == sorted(set(written)), batches  # each once, in arrival order
    assert all(1 <= len(batch) <= max_batch for batch in batches)
    for n, task in enumerate(tasks):
        if task.cancelled():
            continue  # written or not: its caller hears nothing of it
        assert n in written
        if callers[n][0]:
            error = task.exception()
            assert isinstance(error, ItemFailed) and error.args == (n,)
        else:
            assert task.result() == n * 10


async def test_a_failed_write_is_every_callers_and_the_next_batch_goes_on() -> None:
    calls: list[list[str]] = []

    async def write(items: Sequence[str]) -> list[str | Exception]:
        calls.append(list(items))
        await asyncio.sleep(0)
        if "down" in items:
            raise StoreUnavailable("the store did not answer")
        return [item.upper() for item in items]

    batcher: GroupCommit[str, str] = GroupCommit(write)
    first = asyncio.create_task(batcher.submit("a"))
    await asyncio.sleep(0)  # "a" in flight alone
    failing = [asyncio.create_task(batcher.submit(item)) for item in ("down", "b")]
    results = await asyncio.gather(first, *failing, return_exceptions=True)
    assert results[0] == "A"
    assert all(isinstance(r, StoreUnavailable) for r in results[1:])
    assert await batcher.submit("c") == "C"
    assert calls == [["a"], ["down", "b"], ["c"]]


async def test_a_caller_cancelled_in_flight_does_not_stop_the_others_write() -> None:
    release = asyncio.Event()
    written: list[list[int]] = []

    async def write(items: Sequence[int]) -> list[int | Exception]:
        await release.wait()
        written.append(list(items))
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit(write)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the batch [0, 1, 2] is in flight
    tasks[0].cancel()
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [1, 2]
    assert written == [[0, 1, 2]]


@pytest.fixture
def db(mongo_db: AsyncDatabase[Document]) -> AsyncDatabase[Document]:
    return mongo_db  # (tests/contracts/conftest.py: a fresh database per test)


@pytest.fixture
async def events(db: AsyncDatabase[Document]) -> MongoEventStore:
    store = MongoEventStore(db)
    await store.ensure_indexes()
    return store


async def _appends(
    store: MongoEventStore, *appends: tuple[EventEnvelope, list[tuple[str, str]]]
) -> list[list[EventEnvelope] | BaseException]:
    return await asyncio.gather(
        *(store.append([event], reserves) for event, reserves in appends), return_exceptions=True
    )


async def test_concurrent_appends_are_one_write_each_stored_once_with_its_own_sequence(
    events: MongoEventStore, db: AsyncDatabase[Document]
) -> None:
    appended = [bare_event(f"A-{n}", 1) for n in range(20)]
    with recording() as sent:
        results = await _appends(events, *((event, []) for event in appended))
    assert [str(command) for command in sent] == ["findAndModify counters", "insert events"]
    stored = [result[0] for result in results if isinstance(result, list)]
    assert [e.event_id for e in stored] == [e.event_id for e in appended]
    sequences = [e.sequence for e in stored]
    assert len(set(sequences)) == 20 and sequences == sorted(sequences)
    for event in stored:
        assert await events.get(event.event_id) == event
    assert await db[EVENTS].count_documents({}) == 20


async def test_a_duplicate_event_id_in_a_batch_is_already_written_for_its_caller_only(
    events: MongoEventStore, db: AsyncDatabase[Document]
) -> None:
    [earlier] = await events.append([bare_event("D-1", 1)])
    twice = bare_event("D-2", 1)
    fresh = bare_event("D-3", 1)
    results = await _appends(events, (earlier, []), (twice, []), (twice, []), (fresh, []))
    assert results[0] == [earlier]  # a resend: what was stored, its sequence kept
    assert results[1] == results[2]  # the same event twice in a batch: stored once
    assert isinstance(results[3], list) and results[3][0].event_id == fresh.event_id
    assert await db[EVENTS].count_documents({}) == 3


async def test_a_version_conflict_in_a_batch_is_that_callers_only(
    events: MongoEventStore,
) -> None:
    first, rival, other = bare_event("V-1", 1), bare_event("V-1", 1), bare_event("V-2", 1)
    results = await _appends(events, (first, []), (other, []), (rival, []))
    assert isinstance(results[2], ConcurrencyError)
    assert [e.event_id for e in await events.load("V-1")] == [first.event_id]
    assert isinstance(results[0], list) and isinstance(results[1], list)
    assert results[1][0].event_id == other.event_id


async def test_a_reservation_taken_in_a_batch_is_unique_key_taken_for_that_caller_only(
    events: MongoEventStore,
) -> None:
    reference = [("reference", f"RU-{uuid.uuid4().hex[:8]}")]
    holder, second, bystander = bare_event("R-1", 1), bare_event("R-2", 1), bare_event("R-3", 1)
    results = await _appends(events, (holder, reference), (bystander, []), (second, reference))
    assert isinstance(results[0], list) and isinstance(results[1], list)
    error = results[2]
    assert isinstance(error, UniqueKeyTaken)
    assert (error.namespace, error.key) == reference[0]
    assert await events.load("R-2") == []


async def test_an_event_the_store_cannot_take_is_refused_for_its_caller_only(
    events: MongoEventStore,
) -> None:
    too_big = replace(bare_event("B-1", 1), payload={"n": 2**70})  # BSON: 8-byte integers
    results = await _appends(events, (bare_event("B-0", 1), []), (too_big, []))
    assert isinstance(results[1], StoreRefused)
    assert isinstance(results[0], list) and await events.load("B-0") == results[0]


def _record(caller_key: CallerKey) -> IdempotencyRecord:
    return IdempotencyRecord(
        caller_key=caller_key,
        fingerprint="f1",
        claim_id=uuid.uuid4().hex,
        claimed_at=NOW,
        expires_at=NOW + timedelta(days=1),
    )


async def test_claims_and_completions_of_concurrent_requests_are_batched_each_its_own(
    db: AsyncDatabase[Document],
) -> None:
    store = MongoIdempotencyStore(db)
    keys = [CallerKey("olga", f"key-{n}") for n in range(5)]
    records = [_record(key) for key in keys]
    rival = _record(keys[0])
    with recording() as sent:
        claims = await asyncio.gather(*(store.claim(r) for r in [*records, rival]))
    # one insert for all six claims, and the rival's look at the holder: its
    # claim, then the end of that claim (none yet)
    assert [str(command) for command in sent] == ["insert idempotency"] + ["find idempotency"] * 2
    assert claims == [None] * 5 + [records[0]]

    taken_over = replace(records[1], claim_id=uuid.uuid4().hex)
    assert await store.take_over(records[1], taken_over)
    newcomers = [_record(CallerKey("olga", f"later-{n}")) for n in range(2)]
    with recording() as sent:
        completed = await asyncio.gather(
            *(store.complete(r, RESPONSE, NOW + timedelta(days=2)) for r in records),
            *(store.claim(r) for r in newcomers),
        )
    # the responses are inserts of their own documents: one unordered insert
    # with the new claims, no transaction a crash could leave open; the
    # taken-over claim's completion is refused by its takeover's mark
    assert [str(command) for command in sent] == ["insert idempotency"], sent
    assert completed == [True, False, True, True, True, None, None]
    for record, done in zip(records, completed[: len(records)], strict=True):
        stored = await store.get(record.caller_key)
        assert stored is not None
        assert (stored.response == RESPONSE) is done
        assert stored.claim_id == (record if done else taken_over).claim_id


async def test_a_claim_held_by_another_transaction_holds_no_completion(
    db: AsyncDatabase[Document],
) -> None:
    store = MongoIdempotencyStore(db)
    records = [_record(CallerKey("olga", f"conflict-{n}")) for n in range(3)]
    for record in records:
        assert await store.claim(record) is None
    # Another writer's open transaction (e.g. one a killed process left) holds
    # one of the keys' claim documents: a completion does not touch it.
    other = db.client.start_session()
    await other.start_transaction()
    await db[IDEMPOTENCY].update_one(
        {"_id": records[1].caller_key.scoped}, {"$set": {"touched": True}}, session=other
    )
    try:
        completing = asyncio.gather(
            *(store.complete(r, RESPONSE, NOW + timedelta(days=2)) for r in records)
        )
        assert await asyncio.wait_for(completing, timeout=30) == [True, True, True]
    finally:
        await other.abort_transaction()
        await other.end_session()
    for record in records:
        stored = await store.get(record.caller_key)
        assert stored is not None and stored.response == RESPONSE
