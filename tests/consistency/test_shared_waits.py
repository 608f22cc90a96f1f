"""Readers waiting on consistency tokens share one poll of the projection
state (issue 16, freshness): N waiting readers cost one read per interval,
not N, so read-your-writes under load does not take the store the projectors
need. Run against MongoDB (SecantusDB) through a counting wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping

import pytest
from graphql import GraphQLError
from hypothesis import given, settings
from hypothesis import strategies as st
from pymongo.asynchronous.database import AsyncDatabase

from adapters.memory.projection_state import MemoryProjectionState
from adapters.mongo.client import Document
from adapters.mongo.projection_state import MongoProjectionState
from domain.consistency import CARDS_PROJECTION, ConsistencyToken
from domain.events import AGGREGATE_CORPORATE_ACTION
from domain.ports import ProjectionStateStore, StoreUnavailable
from queries.consistency import AppliedVersions, wait_until_projected
from queries.errors import NOT_CAUGHT_UP


class CountedReads:
    """The projection state, with each `applied_versions` call's ids kept."""

    def __init__(self, state: ProjectionStateStore) -> None:
        self.state = state
        self.polls: list[set[str]] = []
        self.failing = False

    async def applied_version(self, projection: str, aggregate_id: str) -> int:
        return await self.state.applied_version(projection, aggregate_id)

    async def applied_versions(
        self, projection: str, aggregate_ids: Iterable[str]
    ) -> dict[str, int]:
        ids = set(aggregate_ids)
        self.polls.append(ids)
        if self.failing:
            raise StoreUnavailable("store down (injected)")
        return await self.state.applied_versions(projection, ids)

    async def record_applied(self, projection: str, versions: Mapping[str, int]) -> None:
        await self.state.record_applied(projection, versions)


@pytest.fixture
async def reads(mongo_db: AsyncDatabase[Document]) -> AsyncIterator[CountedReads]:
    yield CountedReads(MongoProjectionState(mongo_db))


def token(aggregate_id: str, version: int) -> str:
    return ConsistencyToken(AGGREGATE_CORPORATE_ACTION, aggregate_id, version, 1).encode()


async def test_a_hundred_waiting_readers_are_served_by_one_read_per_poll(
    reads: CountedReads,
) -> None:
    waits = AppliedVersions(reads, poll_seconds=0.02)  # type: ignore[arg-type]
    readers = [
        asyncio.create_task(wait_until_projected(token(f"CA-{n}", 2), CARDS_PROJECTION, waits, 30))
        for n in range(100)
    ]
    while len(waits._waiting) < 100:  # noqa: ASYNC110 - each reader read once, found it behind
        await asyncio.sleep(0.01)
    reads.polls.clear()
    while len(reads.polls) < 3:  # noqa: ASYNC110 - polls happen on their own clock
        await asyncio.sleep(0.01)
    assert not any(r.done() for r in readers)
    assert all(ids == {f"CA-{n}" for n in range(100)} for ids in reads.polls)

    await reads.record_applied(CARDS_PROJECTION, {f"CA-{n}": 2 for n in range(50)})
    await asyncio.wait(readers[:50])
    assert not any(r.done() for r in readers[50:])
    await reads.record_applied(CARDS_PROJECTION, {f"CA-{n}": 3 for n in range(50, 100)})
    await asyncio.gather(*readers)
    # one read per poll whatever the number of readers (polling each on its own:
    # a hundred per interval)
    assert len(reads.polls) < 100
    assert waits._poller is None or not waits._waiting  # nothing left behind


async def test_a_reader_past_its_bound_hears_not_caught_up_and_leaves_no_waiter(
    reads: CountedReads,
) -> None:
    waits = AppliedVersions(reads, poll_seconds=0.02)  # type: ignore[arg-type]
    await reads.record_applied(CARDS_PROJECTION, {"CA-LATE": 1})
    with pytest.raises(GraphQLError, match=r"applied 1, need 2") as raised:
        await wait_until_projected(token("CA-LATE", 2), CARDS_PROJECTION, waits, 0.1)
    assert (raised.value.extensions or {})["code"] == NOT_CAUGHT_UP
    assert waits._waiting == {}
    await asyncio.sleep(0.05)
    assert waits._poller is None


async def test_a_failed_poll_reaches_every_waiter_and_the_next_wait_polls_again(
    reads: CountedReads,
) -> None:
    waits = AppliedVersions(reads, poll_seconds=0.02)  # type: ignore[arg-type]
    reads.failing = True
    readers = [
        asyncio.create_task(wait_until_projected(token(f"CA-F{n}", 1), CARDS_PROJECTION, waits, 30))
        for n in range(3)
    ]
    outcomes = await asyncio.gather(*readers, return_exceptions=True)
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    reads.failing = False
    await reads.record_applied(CARDS_PROJECTION, {"CA-F0": 1})
    reader = asyncio.create_task(
        wait_until_projected(token("CA-F1", 1), CARDS_PROJECTION, waits, 30)
    )
    await asyncio.sleep(0.1)
    await reads.record_applied(CARDS_PROJECTION, {"CA-F1": 1})
    await reader


@settings(max_examples=30, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([f"CA-{n}" for n in range(6)]),
        st.tuples(st.integers(1, 5), st.integers(0, 5)),  # (version awaited, version applied)
        min_size=1,
    )
)
async def test_exactly_the_readers_whose_version_is_applied_are_released(
    plan: dict[str, tuple[int, int]],
) -> None:
    state = MemoryProjectionState()
    waits = AppliedVersions(state, poll_seconds=0.001)
    waiting = {
        aggregate_id: asyncio.create_task(waits.until(CARDS_PROJECTION, aggregate_id, awaited))
        for aggregate_id, (awaited, _) in plan.items()
    }
    await state.record_applied(
        CARDS_PROJECTION, {a: applied for a, (_, applied) in plan.items() if applied}
    )
    await asyncio.sleep(0.02)
    for aggregate_id, (awaited, applied) in plan.items():
        assert waiting[aggregate_id].done() == (applied >= awaited)
        waiting[aggregate_id].cancel()
    await asyncio.gather(*waiting.values(), return_exceptions=True)
    assert waits._waiting == {}
