"""Paged positions snapshots (adapters/mongo/positions.py, issue 16): a snapshot
saved as pages of accounts reads back exactly as one stored the old way (one
document per account, marks without a layout or no marks at all), and a store
holding both layouts answers over both."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.asynchronous.database import AsyncDatabase

import adapters.mongo.positions as paged_store
from adapters.mongo.client import Document
from adapters.mongo.positions import (
    POSITION_MARKS,
    POSITION_PAGES,
    POSITIONS,
    MongoPositionStore,
)
from domain.money import canonical_string
from domain.notices import Holding
from domain.positions import Position, PositionsSnapshot

PAGE = 3  # accounts a page in these tests, so small snapshots span several pages
ACCOUNTS = [f"ACC-{n:02d}" for n in range(40)]
# bounds: account ids, ids between two accounts, and below/above all of them
BOUNDS = ["", "ACC-", "ACC-05x", "ACC-2", "ACC-99", *ACCOUNTS]


def _snapshot(holdings: dict[str, int]) -> PositionsSnapshot:
    return PositionsSnapshot(
        "RU0009029540",
        date(2026, 12, 15),
        tuple(
            Position(account, Decimal(quantity) / 4, Decimal("13"))
            for account, quantity in holdings.items()
        ),
    )


async def _save_per_account(
    db: AsyncDatabase[Document], snapshot_id: str, snapshot: PositionsSnapshot, *, marked: bool
) -> None:
    """The layout stored before pages: one document per account, then marks
    without a layout (or none: stored before the marks)."""
    if snapshot.positions:
        await db[POSITIONS].insert_many(
            [
                {
                    "_id": f"{snapshot_id}|{p.account_id}",
                    "snapshotId": snapshot_id,
                    "accountId": p.account_id,
                    "quantity": canonical_string(p.quantity),
                    "taxRatePercent": canonical_string(p.tax_rate_percent),
                }
                for p in snapshot.positions
            ]
        )
    if marked:
        accounts = sorted(p.account_id for p in snapshot.positions)
        await db[POSITION_MARKS].insert_one(
            {"_id": snapshot_id, "every": PAGE, "count": len(accounts), "marks": accounts[::PAGE]}
        )


def _by_index(
    ids: list[str], answer: tuple[list[str], dict[str, dict[str, Holding]]]
) -> tuple[list[str], list[dict[str, Holding]]]:
    accounts, holdings = answer
    return accounts, [holdings[i] for i in ids]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    snapshots=st.lists(
        st.dictionaries(st.sampled_from(ACCOUNTS), st.integers(0, 400), max_size=20),
        min_size=1,
        max_size=4,
    ),
    marked=st.lists(st.booleans(), min_size=4, max_size=4),
    ranges=st.lists(
        st.tuples(st.sampled_from(BOUNDS), st.none() | st.sampled_from(BOUNDS)),
        min_size=1,
        max_size=6,
    ),
    every=st.sampled_from([PAGE, 2 * PAGE, 4]),  # 4: not a multiple of the marks, a pass
)
async def test_pages_read_back_as_the_per_account_layout(
    mongo_db: AsyncDatabase[Document],
    monkeypatch: pytest.MonkeyPatch,
    snapshots: list[dict[str, int]],
    marked: list[bool],
    ranges: list[tuple[str, str | None]],
    every: int,
) -> None:
    monkeypatch.setattr(paged_store, "MARK_EVERY", PAGE)
    store = MongoPositionStore(mongo_db)
    await store.ensure_indexes()
    tag = uuid.uuid4().hex[:8]
    paged = [f"{tag}-P{n}" for n in range(len(snapshots))]
    legacy = [f"{tag}-L{n}" for n in range(len(snapshots))]
    mixed = [p if n % 2 == 0 else old for n, (p, old) in enumerate(zip(paged, legacy, strict=True))]
    for n, holdings in enumerate(snapshots):
        await store.save(paged[n], _snapshot(holdings))
        await store.save(paged[n], _snapshot(holdings))  # a retried save writes nothing new
        await _save_per_account(mongo_db, legacy[n], _snapshot(holdings), marked=marked[n])

    for first, before in ranges:
        expected_accounts = sorted(
            {a for h in snapshots for a in h if first <= a and (before is None or a < before)}
        )
        expected = [
            {
                a: Holding(Decimal(q) / 4, Decimal("13"))
                for a, q in h.items()
                if a in set(expected_accounts)
            }
            for h in snapshots
        ]
        for ids in (paged, legacy, mixed):
            got = _by_index(ids, await store.between(ids, first, before))
            assert got == (expected_accounts, expected), (ids, first, before)

    # the same chunks over either layout: from the marks when `every` is a
    # multiple of theirs (an unmarked snapshot takes a pass), else from a pass
    marked_alike = every == 4 or all(marked[: len(snapshots)])
    if marked_alike:
        assert await store.boundaries(paged, every) == await store.boundaries(legacy, every)
        assert await store.boundaries(mixed, every) == await store.boundaries(legacy, every)
    pages = await mongo_db[POSITION_PAGES].count_documents({"snapshotId": {"$in": paged}})
    assert pages == sum(-(-len(h) // PAGE) for h in snapshots)


async def test_a_paged_snapshot_is_pages_of_sorted_accounts_with_a_layout_in_its_marks(
    mongo_db: AsyncDatabase[Document],
) -> None:
    store = MongoPositionStore(mongo_db)
    await store.ensure_indexes()
    accounts = [f"ACC-{n:05d}" for n in range(1_201)]
    await store.save("BIG", _snapshot({a: 1 for a in reversed(accounts)}))
    pages = [doc async for doc in mongo_db[POSITION_PAGES].find({}).sort("_id", 1)]
    assert [(p["_id"], p["first"], len(p["positions"])) for p in pages] == [
        ("BIG|000000", "ACC-00000", 500),
        ("BIG|000001", "ACC-00500", 500),
        ("BIG|000002", "ACC-01000", 201),
    ]
    assert await mongo_db[POSITIONS].count_documents({}) == 0
    marks = await mongo_db[POSITION_MARKS].find_one({"_id": "BIG"})
    assert marks is not None
    assert (marks["layout"], marks["marks"]) == ("pages", ["ACC-00000", "ACC-00500", "ACC-01000"])
    got, holdings = await store.between(["BIG"], "ACC-00499", "ACC-01001")
    assert got == accounts[499:1001]
    assert sorted(holdings["BIG"]) == accounts[499:1001]
