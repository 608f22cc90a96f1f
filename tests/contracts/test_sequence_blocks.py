"""Sequence blocks (adapters/mongo/event_store.py, issue 16): a process hands
out event sequences it reserved earlier, without a counter round trip, and
still each aggregate's sequences rise with its versions across processes
(the relay publishes in sequence order), every sequence is used once, and a
block is not used past its lifetime (the checkpoint horizon's premise)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.event_store import BLOCK_MIN, EVENTS, MongoEventStore
from domain.events import EventEnvelope
from domain.ports import ConcurrencyError
from tests.builders import bare_event
from tests.store_commands import recording

LIFETIME = 2.0


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def _processes(db: AsyncDatabase[Document], clock: Clock) -> list[MongoEventStore]:
    """Two event stores on one database: two Herald processes."""
    stores = [MongoEventStore(db, block_seconds=LIFETIME, clock=clock) for _ in range(2)]
    await stores[0].ensure_indexes()
    return stores


async def _append_next(
    store: MongoEventStore, aggregate_id: str, count: int = 1, *, known: bool = True
) -> list[EventEnvelope] | None:
    """What a command handler does: load the stream, append its next
    version(s) after the head (None: a concurrent append took them)."""
    stream = await store.load(aggregate_id)
    head = stream[-1] if stream else None
    version = 0 if head is None else head.version
    events = [bare_event(aggregate_id, version + n) for n in range(1, count + 1)]
    follows = (0 if head is None else head.sequence) if known else None
    try:
        return await store.append(events, follows=follows)
    except ConcurrencyError:
        return None


# (process, aggregate, events in the append, head known, seconds passing after)
Step = tuple[int, int, int, bool, float]
steps = st.tuples(
    st.integers(0, 1),
    st.integers(0, 2),
    st.integers(1, 2),
    st.booleans() | st.just(True),
    st.sampled_from([0.0, 0.0, 0.5, LIFETIME]),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rounds=st.lists(st.lists(steps, min_size=1, max_size=4), min_size=1, max_size=8))
async def test_two_processes_interleaving_keep_each_aggregates_sequences_rising(
    mongo_db: AsyncDatabase[Document], rounds: list[list[Step]]
) -> None:
    clock = Clock()
    stores = await _processes(mongo_db, clock)
    example = uuid.uuid4().hex[:8]  # the database is shared by the examples
    aggregates = [f"X-{example}-{n}" for n in range(3)]
    for round_ in rounds:  # each round's appends run concurrently
        await asyncio.gather(
            *(
                _append_next(stores[process], aggregates[aggregate], count, known=known)
                for process, aggregate, count, known, _ in round_
            )
        )
        clock.now += sum(step[4] for step in round_)
    top = await stores[0].last_sequence()
    sequences: list[int] = []
    for aggregate_id in aggregates:
        stream = await stores[1].load(aggregate_id)
        assert [e.version for e in stream] == list(range(1, len(stream) + 1))
        in_stream = [e.sequence for e in stream]
        assert in_stream == sorted(in_stream) and len(set(in_stream)) == len(in_stream)
        sequences += in_stream
    assert len(set(sequences)) == len(sequences)
    assert all(0 < sequence <= top for sequence in sequences)


async def test_a_block_serves_later_appends_without_a_round_trip_until_it_expires(
    mongo_db: AsyncDatabase[Document],
) -> None:
    clock = Clock()
    store, _ = await _processes(mongo_db, clock)
    first = await _append_next(store, "B-1")
    reserved = await store.last_sequence()
    assert first is not None and reserved >= first[0].sequence + BLOCK_MIN - 1
    with recording() as sent:
        second = await _append_next(store, "B-2")
        third = await _append_next(store, "B-1", count=2)  # (a transaction)
    assert "findAndModify counters" not in [str(command) for command in sent]
    assert second is not None and third is not None
    assert [e.sequence for e in [*second, *third]] == [first[0].sequence + n for n in (1, 2, 3)]
    assert await store.last_sequence() == reserved  # nothing allocated since

    clock.now += LIFETIME  # the block's rest is dropped: a gap
    with recording() as sent:
        late = await _append_next(store, "B-3")
    assert [str(command) for command in sent] == [
        "find events",
        "findAndModify counters",
        "insert events",
    ]
    assert late is not None and late[0].sequence == reserved + 1


async def test_a_head_stored_above_the_block_makes_a_fresh_allocation(
    mongo_db: AsyncDatabase[Document],
) -> None:
    clock = Clock()
    low, high = await _processes(mongo_db, clock)
    await _append_next(low, "H-0")  # the lower process's block
    await _append_next(high, "H-1")  # the higher one's, above it
    above = await _append_next(high, "H-2")
    assert above is not None
    # the next version of H-2 must follow it: the lower block cannot serve
    with recording() as sent:
        follower = await _append_next(low, "H-2")
    assert "findAndModify counters" in [str(command) for command in sent]
    assert follower is not None and follower[0].sequence > above[0].sequence
    # an append that does not know its head allocates from the counter too
    with recording() as sent:
        unknown = await _append_next(low, "H-3", known=False)
    assert "findAndModify counters" in [str(command) for command in sent]
    assert unknown is not None and unknown[0].sequence == await low.last_sequence()


async def test_concurrent_appends_without_a_block_share_one_allocation_and_reserve_one(
    mongo_db: AsyncDatabase[Document],
) -> None:
    clock = Clock()
    store, _ = await _processes(mongo_db, clock)
    ids = [f"C-{n}" for n in range(20)]
    with recording() as sent:
        results = await asyncio.gather(*(_append_next(store, i) for i in ids))
    allocations = [str(command) for command in sent].count("findAndModify counters")
    assert allocations <= 2  # a lone first one, then its block serves or one more
    stored: list[Any] = [r[0] for r in results if r is not None]
    assert len({e.sequence for e in stored}) == 20
    assert await mongo_db[EVENTS].count_documents({}) == 20


async def test_a_late_insert_below_the_outbox_front_is_drained_before_its_successor(
    mongo_db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox walk (nothing in its first window) finds an aggregate's
    version 2 from a block above the front; version 1, from another
    process's block below it, was stored while the walk ran. It is read
    too, and first."""
    monkeypatch.setattr("adapters.mongo.event_store.OUTBOX_WINDOW", 2)
    monkeypatch.setattr("adapters.mongo.event_store.OUTBOX_WALK", 3)
    low_clock, high_clock = Clock(), Clock()
    low = MongoEventStore(mongo_db, block_seconds=LIFETIME, clock=low_clock)
    await low.ensure_indexes()
    high = MongoEventStore(mongo_db, block_seconds=LIFETIME, clock=high_clock)
    await _append_next(low, "L-0")  # the lower process's block
    while batch := await high.unpublished(10):
        await high.mark_published([e.event_id for e in batch])
    front = await high.last_sequence()  # the outbox is empty up to here
    high_clock.now += LIFETIME  # the higher process's next block lies above the front
    pads = [*await high.append([bare_event("L-1", 1)], follows=0)]
    pads += await high.append([bare_event("L-2", 1)], follows=0)
    assert [e.sequence for e in pads] == [front + 1, front + 2]
    await high.mark_published([e.event_id for e in pads])  # (the front stays)
    version_1, version_2 = bare_event("L-3", 1), bare_event("L-3", 2)
    walked: list[dict[str, Any]] = []
    outbox = high._outbox

    async def stored_meanwhile(query: dict[str, Any]) -> list[EventEnvelope]:
        if "$gt" in query.get("sequence", {}) and not walked:  # the walk's first window
            walked.append(query)
            [v1] = await low.append([version_1], follows=0)
            [v2] = await high.append([version_2], follows=v1.sequence)
            assert v1.sequence < front < front + 2 < v2.sequence <= front + 2 + 3
        return await outbox(query)

    monkeypatch.setattr(high, "_outbox", stored_meanwhile)
    drained = await high.unpublished(10)
    assert walked, "the walk ran"
    assert [e.event_id for e in drained] == [version_1.event_id, version_2.event_id]
