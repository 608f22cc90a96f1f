"""The PositionSnapshotStore and PositionSnapshotReader ports' contract, run
against the in-memory store and MongoDB: a snapshot is written once and read
back in account order, by bounded ranges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Protocol

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.memory.positions import MemoryPositionSnapshotStore
from adapters.mongo.client import Document
from adapters.mongo.positions import POSITIONS, MongoPositionStore
from domain.notices import Holding
from domain.ports import PositionSnapshotReader, PositionSnapshotStore
from domain.positions import Position, PositionsSnapshot


class Positions(PositionSnapshotStore, PositionSnapshotReader, Protocol):
    """Both ports, as each adapter implements them."""


@pytest.fixture(params=["memory", "mongo"])
async def positions(
    request: pytest.FixtureRequest, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[Positions]:
    if request.param == "memory":
        yield MemoryPositionSnapshotStore()
        return
    mongo = MongoPositionStore(mongo_db)
    await mongo.ensure_indexes()
    yield mongo


def _snapshot(*holdings: tuple[str, str]) -> PositionsSnapshot:
    return PositionsSnapshot(
        "RU0009029540",
        date(2026, 12, 15),
        tuple(
            Position(account, Decimal(quantity), Decimal("13")) for account, quantity in holdings
        ),
    )


async def test_a_saved_snapshot_is_read_back_and_a_resent_save_changes_nothing(
    positions: Positions,
) -> None:
    await positions.save("S1", _snapshot(("ACC-2", "20"), ("ACC-1", "10.5")))
    await positions.save("S1", _snapshot(("ACC-2", "99"), ("ACC-1", "99")))  # a retried save
    accounts, holdings = await positions.between(["S1"], "", None)
    assert accounts == ["ACC-1", "ACC-2"]
    assert holdings == {
        "S1": {
            "ACC-1": Holding(Decimal("10.5"), Decimal("13")),
            "ACC-2": Holding(Decimal("20"), Decimal("13")),
        }
    }


async def test_ranges_cover_every_account_of_several_snapshots_once(positions: Positions) -> None:
    await positions.save("S1", _snapshot(*((f"ACC-{n}", "1") for n in range(1, 8))))
    await positions.save("S2", _snapshot(("ACC-3", "5"), ("ACC-9", "5")))
    marks, total = await positions.boundaries(["S1", "S2", "S-none"], 3)
    assert total == 9
    # every 3rd of the accounts' sorted union (exact below 8 a chunk), after ""
    assert marks == ["", "ACC-4", "ACC-7"]
    seen: list[str] = []
    for index, first in enumerate(marks):
        before = marks[index + 1] if index + 1 < len(marks) else None
        accounts, holdings = await positions.between(["S1", "S2"], first, before)
        seen += accounts
        assert all(first <= a and (before is None or a < before) for a in accounts)
        if first == "":
            assert holdings["S2"] == {"ACC-3": Holding(Decimal("5"), Decimal("13"))}
    assert seen == sorted({f"ACC-{n}" for n in range(1, 8)} | {"ACC-9"})
    assert await positions.boundaries([], 3) == ([], 0)


async def test_large_chunks_are_cut_from_the_marks_saved_with_the_snapshot(
    positions: Positions,
) -> None:
    """At a multiple of MARK_EVERY the Mongo store reads one marks document
    per snapshot instead of passing over its positions; both adapters give
    every 500th account of the union (the memory one by its pass)."""
    accounts = [f"ACC-{n:05d}" for n in range(1_200)]
    await positions.save("BIG", _snapshot(*((a, "1") for a in reversed(accounts))))
    assert await positions.boundaries(["BIG"], 500) == (["", "ACC-00500", "ACC-01000"], 1_200)
    assert await positions.boundaries(["BIG"], 1_000) == (["", "ACC-01000"], 1_200)


async def test_marks_serve_the_boundaries_without_reading_the_positions(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = MongoPositionStore(mongo_db)
    await store.ensure_indexes()
    accounts = [f"ACC-{n:05d}" for n in range(1_000)]
    await store.save("BIG", _snapshot(*((a, "1") for a in accounts)))
    await mongo_db[POSITIONS].delete_many({})  # a pass would now find nothing
    assert await store.boundaries(["BIG"], 500) == (["", "ACC-00500"], 1_000)
