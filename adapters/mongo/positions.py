"""MongoPositionStore: positions snapshots, stored as pages of accounts.

The durable body of a PositionsRecorded event (whose payload only names the
snapshot). Documents are immutable once written, so replaying the log always
finds the same positions.

A snapshot is saved as pages: the sorted accounts between two consecutive
marks (MARK_EVERY accounts), one document each in POSITION_PAGES, its marks
document saying `"layout": "pages"`. SecantusDB's cost is per document, so a
page of 500 accounts costs about what one account did. Snapshots stored
before (one document per account in POSITIONS, marks without a layout, or no
marks) are read as before: the layout is chosen per snapshot.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import suppress
from decimal import Decimal

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document, in_chunks
from adapters.mongo.errors import translated
from domain.money import canonical_string
from domain.notices import Holding
from domain.ports import DuplicateKey
from domain.positions import ChunkBoundaries, PositionsSnapshot

POSITIONS = "position_snapshots"
# per snapshot, every MARK_EVERY-th of its sorted account ids, written with it:
# the fan-out's chunk boundaries without a pass over the positions (a pass over
# a million kept SecantusDB busy 19-38 s before its first answer, past the
# client's socket timeout, and the fan-out retried it for ever)
POSITION_MARKS = "position_marks"
MARK_EVERY = 500
# per paged snapshot, MARK_EVERY sorted accounts a document: {_id: "<snapshot>|<page:06d>",
# snapshotId, first, positions: [[account, quantity, taxRatePercent], ...]}
POSITION_PAGES = "position_pages"
PAGES = "pages"
WRITE_CHUNK = 5000
BATCH = 5000  # account ids per batch of the boundaries pass (the first one is 101 by default)


def _chunks(items: Sequence[Document], size: int) -> Iterator[Sequence[Document]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MongoPositionStore:
    """The PositionSnapshotStore and PositionSnapshotReader ports on MongoDB."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._positions = db[POSITIONS]
        self._marks = db[POSITION_MARKS]
        self._pages = db[POSITION_PAGES]

    async def ensure_indexes(self) -> None:
        async with translated():
            await self._positions.create_index(
                [("snapshotId", ASCENDING), ("accountId", ASCENDING)], unique=True
            )
            await self._pages.create_index(
                [("snapshotId", ASCENDING), ("first", ASCENDING)], unique=True
            )

    async def save(self, snapshot_id: str, snapshot: PositionsSnapshot) -> None:
        """Store the snapshot as pages of MARK_EVERY sorted accounts, then its
        marks (last: marks stand for a snapshot whose pages are all stored).
        Idempotent: a retried save with the same id writes nothing new."""
        # account ids are unique in a snapshot (domain.positions.parse_positions)
        ordered = sorted(snapshot.positions, key=lambda p: p.account_id)
        pages = [
            {
                "_id": f"{snapshot_id}|{start // MARK_EVERY:06d}",
                "snapshotId": snapshot_id,
                "first": ordered[start].account_id,
                "positions": [
                    [
                        p.account_id,
                        canonical_string(p.quantity),
                        canonical_string(p.tax_rate_percent),
                    ]
                    for p in ordered[start : start + MARK_EVERY]
                ],
            }
            for start in range(0, len(ordered), MARK_EVERY)
        ]
        for chunk in _chunks(pages, WRITE_CHUNK // MARK_EVERY):
            # DuplicateKey: a retried save, the pages are there
            with suppress(DuplicateKey):
                async with translated():
                    await self._pages.insert_many(chunk, ordered=False)
        marks = {
            "layout": PAGES,
            "every": MARK_EVERY,
            "count": len(ordered),
            "marks": [page["first"] for page in pages],
        }
        with suppress(DuplicateKey):
            async with translated():
                await self._marks.insert_one({"_id": snapshot_id, **marks})

    async def _recorded(self, snapshot_ids: Sequence[str]) -> dict[str, Document]:
        """The marks documents of those snapshots that have them, by snapshot id."""
        async with translated():
            return {
                doc["_id"]: doc
                async for doc in self._marks.find({"_id": {"$in": sorted(set(snapshot_ids))}})
            }

    async def boundaries(self, snapshot_ids: Sequence[str], every: int) -> tuple[list[str], int]:
        """From each snapshot's marks (one read) when `every` is a multiple of
        MARK_EVERY; else, or for a snapshot stored before the marks, one
        unsorted streaming pass over its account ids (ChunkBoundaries),
        O(N / every) memory."""
        marks: set[str] = set()
        total = 0
        recorded = await self._recorded(snapshot_ids)
        unmarked: list[str] = []
        for snapshot_id in snapshot_ids:
            doc = recorded.get(snapshot_id)
            if doc is None or every % int(doc["every"]) != 0:
                unmarked.append(snapshot_id)
                continue
            step = every // int(doc["every"])
            marks.update(doc["marks"][step::step])  # the first account: "" stands for it
            total += int(doc["count"])
        paged = {s for s in unmarked if _paged(recorded.get(s))}
        passed, seen = await self._pass(unmarked, paged, every)
        marks.update(passed)
        total += seen
        return (["", *sorted(marks - {""})] if total else []), total

    async def _pass(
        self, snapshot_ids: Sequence[str], paged: set[str], every: int
    ) -> tuple[list[str], int]:
        cut = ChunkBoundaries(every)
        async with translated():
            for snapshot_id in snapshot_ids:
                if snapshot_id in paged:
                    pages = self._pages.find(
                        {"snapshotId": snapshot_id}, {"_id": 0, "positions": 1}
                    )
                    async for page in pages:
                        for account, _, _ in page["positions"]:
                            cut.see(account)
                    continue
                cursor = self._positions.find(
                    {"snapshotId": snapshot_id}, {"_id": 0, "accountId": 1}, batch_size=BATCH
                )
                async for doc in cursor:
                    cut.see(doc["accountId"])
        return cut.boundaries(), cut.seen

    async def between(
        self, snapshot_ids: Sequence[str], first: str, before: str | None
    ) -> tuple[list[str], dict[str, dict[str, Holding]]]:
        """Accounts first <= id < before (None: to the end) any snapshot lists, with
        their holdings: for a paged snapshot the pages that can hold such
        accounts (found from its marks, read by _id), filtered to the bounds;
        for one stored per account a bounded range on the (snapshotId,
        accountId) index."""
        recorded = await self._recorded(snapshot_ids)
        holdings: dict[str, dict[str, Holding]] = {}
        accounts: set[str] = set()
        for snapshot_id in snapshot_ids:
            kept = holdings.setdefault(snapshot_id, {})
            doc = recorded.get(snapshot_id)
            if doc is not None and _paged(doc):
                found = self._paged_between(snapshot_id, doc["marks"], first, before)
            else:
                found = self._documents_between(snapshot_id, first, before)
            async with translated():
                async for account, quantity, tax_rate in found:
                    kept[account] = Holding(Decimal(quantity), Decimal(tax_rate))
                    accounts.add(account)
        return sorted(accounts), holdings

    async def _paged_between(
        self, snapshot_id: str, marks: list[str], first: str, before: str | None
    ) -> AsyncIterator[tuple[str, str, str]]:
        # page n holds marks[n] <= account < marks[n + 1]
        low = max(bisect_right(marks, first) - 1, 0)
        high = len(marks) if before is None else bisect_left(marks, before)
        if low >= high:
            return
        ids = [f"{snapshot_id}|{page:06d}" for page in range(low, high)]
        for some in in_chunks(ids):  # (a whole snapshot's range: thousands of pages)
            cursor = self._pages.find({"_id": {"$in": some}}, {"_id": 0, "positions": 1})
            async for page in cursor:
                for account, quantity, tax_rate in page["positions"]:
                    if first <= account and (before is None or account < before):
                        yield account, quantity, tax_rate

    async def _documents_between(
        self, snapshot_id: str, first: str, before: str | None
    ) -> AsyncIterator[tuple[str, str, str]]:
        bounds: dict[str, str] = {"$gte": first}
        if before is not None:
            bounds["$lt"] = before
        cursor = self._positions.find(
            {"snapshotId": snapshot_id, "accountId": bounds},
            {"_id": 0, "accountId": 1, "quantity": 1, "taxRatePercent": 1},
        )
        async for doc in cursor:
            yield doc["accountId"], doc["quantity"], doc["taxRatePercent"]


def _paged(marks: Document | None) -> bool:
    """Whether a snapshot's marks document says it is stored as pages."""
    return marks is not None and marks.get("layout") == PAGES
