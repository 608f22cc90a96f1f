"""The applied-through checkpoint (projections/checkpoint.py) on the real
store: it stands just before the first event of the projection's streams the
tracking does not cover, follows the stored record at once while it has no
gap, passes a gap (an append in flight or failed) only once the counter
stood past it `horizon_seconds` ago, and never goes back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo import AsyncMongoClient

from adapters.mongo import event_store
from adapters.mongo.event_store import MongoEventStore
from adapters.mongo.projection_state import MongoProjectionState
from domain import events as ev
from projections.checkpoint import AppliedThrough, replay_from
from tests.builders import announcement
from tests.store_commands import recording

CARDS = frozenset({ev.AGGREGATE_CORPORATE_ACTION})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    name = f"checkpoint_{uuid.uuid4().hex[:10]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def stores(db: Any) -> tuple[MongoEventStore, MongoProjectionState]:
    events = MongoEventStore(db)
    await events.ensure_indexes()
    return events, MongoProjectionState(db)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(applied=st.lists(st.booleans(), min_size=1, max_size=12))
async def test_the_checkpoint_stops_before_the_first_event_not_applied(
    db: Any, applied: list[bool]
) -> None:
    events, state = await stores(db)
    projection = f"cards-{uuid.uuid4().hex[:6]}"  # a projection of its own per example
    start = await events.last_sequence()
    stored = [(await events.append([announcement(n)]))[0] for n in range(len(applied))]
    await state.record_applied(
        projection,
        {e.aggregate_id: e.version for e, done in zip(stored, applied, strict=True) if done},
    )
    checkpoint = AppliedThrough(projection, CARDS, events, state, horizon_seconds=0.0)
    await state.advance_applied_through(projection, start)
    through = await checkpoint.advance()
    first_missing = next(
        (e.sequence for e, done in zip(stored, applied, strict=True) if not done), None
    )
    expected = stored[-1].sequence if first_missing is None else first_missing - 1
    assert through == expected == await state.applied_through(projection)


async def test_the_checkpoint_follows_at_once_and_waits_at_a_gap_until_it_is_settled(
    db: Any,
) -> None:
    events, state = await stores(db)
    clock = Clock()
    checkpoint = AppliedThrough("cards", CARDS, events, state, horizon_seconds=60.0, clock=clock)
    first = await events.append([announcement(0)])
    await state.record_applied("cards", {first[0].aggregate_id: 1})
    # no gap: every append up to it is over, from the very first call
    assert await checkpoint.advance() == first[0].sequence
    # an append that allocated its sequence and is still in flight (or failed)
    in_flight = await events._allocate_sequences(1)
    later = await events.append([announcement(1)])
    await state.record_applied("cards", {later[0].aggregate_id: 1})
    assert later[0].sequence == in_flight + 1
    assert await checkpoint.advance() == first[0].sequence  # not past the gap
    clock.now += 30
    assert await checkpoint.advance() == first[0].sequence
    clock.now += 30  # the counter stood past the gap a minute ago: settled
    assert await checkpoint.advance() == later[0].sequence
    # a gap at the end (an allocation not stored yet) waits the same way
    await events._allocate_sequences(1)
    assert await checkpoint.advance() == later[0].sequence
    clock.now += 60
    assert await checkpoint.advance() == later[0].sequence + 1


async def test_other_streams_do_not_hold_the_checkpoint_back_and_it_never_goes_back(
    db: Any,
) -> None:
    events, state = await stores(db)
    action = await events.append([announcement(0)])
    positions = ev.EventEnvelope(
        event_id=uuid.uuid4().hex,
        event_name=ev.POSITIONS_RECORDED,
        aggregate_type=ev.AGGREGATE_POSITIONS,
        aggregate_id="RU0009029540|2026-12-15",
        version=1,
        occurred_at=action[0].occurred_at,
        actor="olga",
        correlation_id="test",
        payload={},
    )
    await events.append([positions])  # not a cards stream, never applied by cards
    await state.record_applied("cards", {action[0].aggregate_id: 1})
    checkpoint = AppliedThrough("cards", CARDS, events, state, horizon_seconds=0.0)
    end = await events.last_sequence()
    assert await checkpoint.advance() == end
    await state.advance_applied_through("cards", 1)  # an older value arrives late
    assert await state.applied_through("cards") == end
    # the notices projection never ran: the whole record is re-published
    assert await replay_from(state, ["cards", "notices"]) == 0


async def test_an_empty_log_gets_again_only_the_events_past_the_checkpoint(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_store, "REQUEUE_SLICE", 3)  # several slices, one partial
    events, _ = await stores(db)
    stored = [(await events.append([announcement(n)]))[0] for n in range(10)]
    await events.mark_published([e.event_id for e in stored])
    through = stored[3].sequence
    assert await events.mark_unpublished_after(through) == 6
    assert [e.sequence for e in await events.unpublished(100)] == [e.sequence for e in stored[4:]]
    assert await events.unpublished_through(stored[5].sequence) == 2


async def test_a_dropped_block_tail_is_passed_only_after_the_horizon(db: Any) -> None:
    clock = Clock()
    events = MongoEventStore(db, block_seconds=2.0, clock=clock)
    await events.ensure_indexes()
    state = MongoProjectionState(db)
    checkpoint = AppliedThrough("cards", CARDS, events, state, horizon_seconds=60.0, clock=clock)
    # a new stream follows sequence 0: its sequence comes with a block reserved
    [first] = await events.append([announcement(0)], follows=0)
    await state.record_applied("cards", {first.aggregate_id: 1})
    reserved = await events.last_sequence()
    assert reserved > first.sequence  # the block's rest, not stored (yet)
    assert await checkpoint.advance() == first.sequence
    clock.now += 2.0  # the block expires: its rest is dropped, a gap for good
    [later] = await events.append([announcement(1)], follows=0)
    await state.record_applied("cards", {later.aggregate_id: 1})
    assert later.sequence == reserved + 1  # from a fresh block, above the gap
    clock.now += 57.0
    assert await checkpoint.advance() == first.sequence  # not yet past the gap
    clock.now += 1.0  # the counter stood past the dropped tail a horizon ago
    assert await checkpoint.advance() == later.sequence


async def test_a_checkpoint_standing_at_an_unsettled_gap_reads_one_key_of_the_record(
    db: Any,
) -> None:
    """While blocks of sequences are in use S mostly stands at a gap; each
    advance then costs a look at the next sequence, not a page of heads and
    their tracking."""
    events, state = await stores(db)
    clock = Clock()
    checkpoint = AppliedThrough("cards", CARDS, events, state, horizon_seconds=60.0, clock=clock)
    [first] = await events.append([announcement(0)])
    await events._allocate_sequences(1)  # in flight, or dropped: a gap
    stored = [(await events.append([announcement(n)]))[0] for n in range(1, 4)]
    await state.record_applied("cards", {e.aggregate_id: 1 for e in [first, *stored]})
    assert await checkpoint.advance() == first.sequence
    with recording() as sent:
        assert await checkpoint.advance() == first.sequence
    reads = [command for command in sent if str(command) == "find events"]
    assert [read.command["filter"] for read in reads] == [
        {"sequence": {"$gt": first.sequence, "$lte": first.sequence + 1}}
    ]
    assert "find projection_tracking" not in [str(command) for command in sent]
    clock.now += 60.0  # settled: the walk goes on over it
    assert await checkpoint.advance() == stored[-1].sequence
