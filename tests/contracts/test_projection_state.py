"""The ProjectionStateStore port's contract, run against the in-memory store
and MongoDB: applied versions only rise, the applied-through checkpoint only
rises, and reported progress reads back by projection name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.memory.projection_state import MemoryProjectionState
from adapters.mongo.client import Document
from adapters.mongo.projection_state import MongoProjectionState
from adapters.mongo.transactions import TransactionSessions
from domain.ports import ProjectionStateStore


@pytest.fixture(params=["memory", "mongo", "mongo-without-transactions"])
async def state(
    request: pytest.FixtureRequest, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[ProjectionStateStore]:
    if request.param == "memory":
        yield MemoryProjectionState()
        return
    sessions = TransactionSessions(mongo_db) if request.param == "mongo" else None
    yield MongoProjectionState(mongo_db, sessions=sessions)


async def test_applied_versions_only_rise_per_projection_and_aggregate(
    state: ProjectionStateStore,
) -> None:
    assert await state.applied_version("cards", "CA1") == 0
    await state.record_applied("cards", {"CA1": 3, "CA2": 1})
    await state.record_applied("cards", {"CA1": 2})  # a redelivered, older batch
    await state.record_applied("notices", {"CA1": 7})
    await state.record_applied("cards", {})
    assert await state.applied_version("cards", "CA1") == 3
    assert await state.applied_version("notices", "CA1") == 7
    assert await state.applied_versions("cards", ["CA1", "CA2", "CA3", "CA1"]) == {
        "CA1": 3,
        "CA2": 1,
    }


async def test_a_batch_of_first_and_later_versions_only_raises_them(
    state: ProjectionStateStore,
) -> None:
    await state.record_applied("cards", {"A": 1, "B": 4})
    # A's first version redelivered and B's older one, beside new aggregates
    await state.record_applied("cards", {"A": 1, "B": 2, "C": 1, "D": 1, "E": 3})
    ids = ["A", "B", "C", "D", "E"]
    assert await state.applied_versions("cards", ids) == {"A": 1, "B": 4, "C": 1, "D": 1, "E": 3}
    await state.record_applied("cards", {"A": 2, "C": 1, "D": 5, "E": 1})
    assert await state.applied_versions("cards", ids) == {"A": 2, "B": 4, "C": 1, "D": 5, "E": 3}


async def test_the_applied_through_checkpoint_never_goes_back(
    state: ProjectionStateStore,
) -> None:
    assert await state.applied_through("cards") == 0
    await state.advance_applied_through("cards", 40)
    await state.advance_applied_through("cards", 12)
    await state.advance_applied_through("notices", 5)
    assert await state.applied_through("cards") == 40
    assert await state.applied_through("notices") == 5


async def test_reported_progress_reads_back_by_name(state: ProjectionStateStore) -> None:
    assert await state.statuses() == []
    await state.report("notices", 10, 4)
    await state.report("cards", 7, 0)
    await state.report("notices", 14, 0)
    statuses = await state.statuses()
    assert [(s.name, s.position, s.lag) for s in statuses] == [("cards", 7, 0), ("notices", 14, 0)]
    assert all(s.updated_at.tzinfo is not None for s in statuses)


async def test_fanouts_under_way_add_up_per_projection_and_leave_when_over(
    state: ProjectionStateStore,
) -> None:
    """Each member notes its own action's fan-out; `statuses` sums them, and a
    fan-out noted before the projection's first report still shows."""
    await state.report_fanout("notices", "CA1", 7000)
    (early,) = await state.statuses()
    assert (early.name, early.position, early.lag) == ("notices", 0, 0)
    assert early.fanout_accounts_remaining == 7000
    await state.report_fanout("notices", "CA2", 300)
    await state.report("notices", 14, 0)  # the runner's report keeps the fan-outs
    await state.report("cards", 7, 0)
    await state.report_fanout("notices", "CA1", 2000)
    remaining = {s.name: s.fanout_accounts_remaining for s in await state.statuses()}
    assert remaining == {"cards": 0, "notices": 2300}
    await state.report_fanout("notices", "CA2", 0)
    await state.report_fanout("notices", "CA1", 0)
    await state.report_fanout("notices", "CA3", 0)  # never noted: nothing to forget
    statuses = await state.statuses()
    assert [(s.name, s.position, s.fanout_accounts_remaining) for s in statuses] == [
        ("cards", 7, 0),
        ("notices", 14, 0),
    ]
