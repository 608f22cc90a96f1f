"""The EventStore port's contract, run against every adapter: the in-memory
store and MongoDB (eventsourcing's one-recorder-suite-per-store model)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from adapters.memory.event_store import MemoryEventStore
from adapters.mongo.client import connect
from adapters.mongo.event_store import EVENTS, MongoEventStore
from domain.events import EventEnvelope
from domain.ports import ConcurrencyError, EventStore, UniqueKeyTaken
from tests.builders import bare_event


@pytest.fixture(params=["memory", "mongo"])
async def store(request: pytest.FixtureRequest, mongo_uri: str) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield MemoryEventStore()
        return
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    mongo = MongoEventStore(client[name])
    await mongo.ensure_indexes()
    yield mongo
    await client.drop_database(name)
    await client.close()


def _event(aggregate_id: str, version: int) -> EventEnvelope:
    return bare_event(aggregate_id, version)


async def test_appended_events_load_in_version_order_with_rising_sequences(
    store: EventStore,
) -> None:
    a1, b1, a2 = _event("A", 1), _event("B", 1), _event("A", 2)
    stored = [*await store.append([a1]), *await store.append([b1]), *await store.append([a2])]
    sequences = [e.sequence for e in stored]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    assert [e.event_id for e in await store.load("A")] == [a1.event_id, a2.event_id]
    assert [e.version for e in await store.load("A", after_version=1)] == [2]
    assert await store.get(b1.event_id) == stored[1]
    assert await store.get("no-such-event") is None


async def test_an_append_following_its_streams_head_is_sequenced_above_it(
    store: EventStore,
) -> None:
    [a1] = await store.append([_event("A", 1)], follows=0)
    [b1] = await store.append([_event("B", 1)], follows=0)
    [a2] = await store.append([_event("A", 2)], follows=a1.sequence)
    [b2, b3] = await store.append([_event("B", 2), _event("B", 3)], follows=b1.sequence)
    assert a1.sequence < a2.sequence and b1.sequence < b2.sequence < b3.sequence
    assert len({e.sequence for e in (a1, a2, b1, b2, b3)}) == 5


async def test_an_append_resent_returns_what_was_stored(store: EventStore) -> None:
    pair = [_event("A", 1), _event("A", 2)]
    first = await store.append(pair, [("reference", "R-1")])
    assert await store.append(pair, [("reference", "R-1")]) == first
    assert len(await store.load("A")) == 2


async def test_a_taken_version_conflicts_and_a_held_reservation_is_refused(
    store: EventStore,
) -> None:
    await store.append([_event("A", 1)], [("reference", "R-1")])
    with pytest.raises(ConcurrencyError):
        await store.append([_event("A", 1)])
    with pytest.raises(UniqueKeyTaken) as taken:
        await store.append([_event("B", 1)], [("reference", "R-1")])
    assert (taken.value.namespace, taken.value.key) == ("reference", "R-1")
    assert await store.load("B") == []  # the refused event was not stored


async def test_the_outbox_drains_in_order_parks_and_unparks(store: EventStore) -> None:
    events = await store.append([_event("A", 1), _event("A", 2), _event("A", 3)])
    ids = [e.event_id for e in events]
    assert [e.event_id for e in await store.unpublished(10)] == ids
    await store.mark_published(ids[:1])
    await store.park(ids[1:2], datetime(2026, 11, 30, tzinfo=UTC))
    assert [e.event_id for e in await store.unpublished(10)] == ids[2:]
    assert await store.unpark(ids[1:2]) == 1
    assert [e.event_id for e in await store.unpublished(10)] == ids[1:]
    assert [e.event_id for e in await store.read_all(events[0].sequence, 10)] == ids[1:]


async def test_an_event_keeps_the_trace_context_it_was_recorded_in(store: EventStore) -> None:
    context = {
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "herald=1",
    }
    traced = replace(_event("T", 1), trace_context=context)
    untraced = _event("U", 1)
    await store.append([traced])
    await store.append([untraced])
    assert (await store.get(traced.event_id)).trace_context == context  # type: ignore[union-attr]
    assert (await store.get(untraced.event_id)).trace_context == {}  # type: ignore[union-attr]
    outbox = {e.event_id: e.trace_context for e in await store.unpublished(10)}
    assert outbox == {traced.event_id: context, untraced.event_id: {}}


async def test_an_event_stored_before_trace_contexts_reads_without_one(mongo_uri: str) -> None:
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    try:
        store = MongoEventStore(client[name])
        [stored] = await store.append([_event("OLD", 1)])
        # as written before `metadata` existed, and with a malformed one
        await client[name][EVENTS].update_one(
            {"_id": stored.event_id}, {"$unset": {"metadata": ""}}
        )
        assert (await store.get(stored.event_id)) == stored
        await client[name][EVENTS].update_one(
            {"_id": stored.event_id}, {"$set": {"metadata": "garbage"}}
        )
        assert (await store.get(stored.event_id)) == stored
    finally:
        await client.drop_database(name)
        await client.close()


async def test_stream_heads_name_each_streams_last_version_before_a_sequence(
    store: EventStore,
) -> None:
    [a1] = await store.append([_event("A", 1)])
    [b1] = await store.append([_event("B", 1)])
    [a2] = await store.append([_event("A", 2)])
    assert await store.stream_heads(["A", "B", "C"], a2.sequence + 1) == {"A": 2, "B": 1}
    assert await store.stream_heads(["A", "B"], a2.sequence) == {"A": 1, "B": 1}
    assert await store.stream_heads(["A", "B"], b1.sequence) == {"A": 1}
    assert await store.stream_heads(["A"], a1.sequence) == {}
    assert await store.stream_heads([], a2.sequence + 1) == {}


@pytest.fixture
def short_in_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    """`$in` filters of at most 2 values (adapters.mongo.client.IN_LIMIT), so a
    few ids cross several lists."""
    monkeypatch.setattr("adapters.mongo.client.IN_LIMIT", 2)


@pytest.mark.usefixtures("short_in_lists")
async def test_id_lists_longer_than_one_in_filter_are_all_read_and_marked(
    store: EventStore,
) -> None:
    events = [(await store.append([_event(f"S{n}", 1)]))[0] for n in range(5)]
    ids = [e.event_id for e in events]
    assert await store.stream_heads([f"S{n}" for n in range(5)], 10**9) == {
        f"S{n}": 1 for n in range(5)
    }
    batch = [_event("T", version) for version in range(1, 6)]
    stored = await store.append(batch)
    assert await store.append(batch) == stored  # resent: read back by id, 2 ids a read
    ids += [e.event_id for e in stored]
    await store.park(ids[:3], datetime(2026, 11, 30, tzinfo=UTC))
    assert await store.unpark(ids[:3]) == 3
    await store.mark_published(ids[:8])
    assert [e.event_id for e in await store.unpublished(10)] == ids[8:]


@pytest.fixture
def small_outbox_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Mongo outbox read in windows of 2 sequences, walked 3 at a time,
    so a few events cross several windows."""
    monkeypatch.setattr("adapters.mongo.event_store.OUTBOX_WINDOW", 2)
    monkeypatch.setattr("adapters.mongo.event_store.OUTBOX_WALK", 3)


@pytest.mark.usefixtures("small_outbox_windows")
async def test_the_outbox_drains_in_sequence_order_across_its_windows(store: EventStore) -> None:
    events = [(await store.append([_event(f"W{n}", 1)]))[0] for n in range(9)]
    drained: list[str] = []
    while batch := await store.unpublished(2):
        drained.extend(e.event_id for e in batch)
        await store.mark_published([e.event_id for e in batch])
    assert drained == [e.event_id for e in events]


@pytest.mark.usefixtures("small_outbox_windows")
async def test_the_outbox_finds_events_past_a_long_published_run(store: EventStore) -> None:
    events = [(await store.append([_event(f"R{n}", 1)]))[0] for n in range(12)]
    assert [e.event_id for e in await store.unpublished(1)] == [events[0].event_id]
    await store.mark_published([e.event_id for e in events[:-1]])
    # the last one lies several windows above the front the first poll saw
    assert [e.event_id for e in await store.unpublished(5)] == [events[-1].event_id]
    await store.mark_published([events[-1].event_id])
    assert await store.unpublished(5) == []
    later = await store.append([_event("R-late", 1)])
    assert await store.unpublished(5) == later


@pytest.mark.usefixtures("small_outbox_windows")
async def test_an_event_below_the_outbox_front_is_published_first(store: EventStore) -> None:
    events = [(await store.append([_event(f"P{n}", 1)]))[0] for n in range(8)]
    ids = [e.event_id for e in events]
    await store.park(ids[:1], datetime(2026, 11, 30, tzinfo=UTC))
    while batch := await store.unpublished(3):  # the front moves past the parked one
        await store.mark_published([e.event_id for e in batch])
    assert await store.unpark(ids[:1]) == 1
    assert [e.event_id for e in await store.unpublished(3)] == ids[:1]


@pytest.mark.usefixtures("small_outbox_windows")
async def test_a_requeued_record_drains_in_order_from_where_it_was_requeued(
    mongo_uri: str,
) -> None:
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    store = MongoEventStore(client[name])
    try:
        await store.ensure_indexes()
        events = [(await store.append([_event(f"Q{n}", 1)]))[0] for n in range(10)]
        while batch := await store.unpublished(4):
            await store.mark_published([e.event_id for e in batch])
        assert await store.mark_unpublished_after(events[2].sequence) == 7
        drained: list[str] = []
        while batch := await store.unpublished(2):
            drained.extend(e.event_id for e in batch)
            await store.mark_published([e.event_id for e in batch])
        assert drained == [e.event_id for e in events[3:]]
    finally:
        await client.drop_database(name)
        await client.close()
