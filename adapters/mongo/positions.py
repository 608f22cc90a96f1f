"""MongoPositionStore: positions snapshots, one document per account.

The durable body of a PositionsRecorded event (whose payload only names the
snapshot). Documents are immutable once written, so replaying the log always
finds the same positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import suppress
from decimal import Decimal

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
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

    async def ensure_indexes(self) -> None:
        async with translated():
            await self._positions.create_index(
                [("snapshotId", ASCENDING), ("accountId", ASCENDING)], unique=True
            )

    async def save(self, snapshot_id: str, snapshot: PositionsSnapshot) -> None:
        documents = [
            {
                "_id": f"{snapshot_id}|{p.account_id}",
                "snapshotId": snapshot_id,
                "accountId": p.account_id,
                "quantity": canonical_string(p.quantity),
                "taxRatePercent": canonical_string(p.tax_rate_percent),
            }
            for p in snapshot.positions
        ]
        for chunk in _chunks(documents, WRITE_CHUNK):
            # DuplicateKey: a retried save, the documents are there
            with suppress(DuplicateKey):
                async with translated():
                    await self._positions.insert_many(chunk, ordered=False)
        # last: marks stand for a snapshot whose positions are all stored
        accounts = sorted({p.account_id for p in snapshot.positions})
        marks = {"every": MARK_EVERY, "count": len(accounts), "marks": accounts[::MARK_EVERY]}
        with suppress(DuplicateKey):
            async with translated():
                await self._marks.insert_one({"_id": snapshot_id, **marks})

    async def boundaries(self, snapshot_ids: Sequence[str], every: int) -> tuple[list[str], int]:
        """From each snapshot's marks (one read) when `every` is a multiple of
        MARK_EVERY; else, or for a snapshot stored before the marks, one
        unsorted streaming pass over its account ids (ChunkBoundaries),
        O(N / every) memory."""
        marks: set[str] = set()
        total = 0
        async with translated():
            recorded = {
                doc["_id"]: doc
                async for doc in self._marks.find({"_id": {"$in": sorted(set(snapshot_ids))}})
            }
        unmarked: list[str] = []
        for snapshot_id in snapshot_ids:
            doc = recorded.get(snapshot_id)
            if doc is None or every % int(doc["every"]) != 0:
                unmarked.append(snapshot_id)
                continue
            step = every // int(doc["every"])
            marks.update(doc["marks"][step::step])  # the first account: "" stands for it
            total += int(doc["count"])
        passed, seen = await self._pass(unmarked, every)
        marks.update(passed)
        total += seen
        return (["", *sorted(marks - {""})] if total else []), total

    async def _pass(self, snapshot_ids: Sequence[str], every: int) -> tuple[list[str], int]:
        cut = ChunkBoundaries(every)
        async with translated():
            for snapshot_id in snapshot_ids:
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
        their holdings: a bounded range on the (snapshotId, accountId) index."""
        bounds: dict[str, str] = {"$gte": first}
        if before is not None:
            bounds["$lt"] = before
        holdings: dict[str, dict[str, Holding]] = {}
        accounts: set[str] = set()
        async with translated():
            for snapshot_id in snapshot_ids:
                kept = holdings.setdefault(snapshot_id, {})
                cursor = self._positions.find(
                    {"snapshotId": snapshot_id, "accountId": bounds},
                    {"_id": 0, "accountId": 1, "quantity": 1, "taxRatePercent": 1},
                )
                async for doc in cursor:
                    kept[doc["accountId"]] = Holding(
                        Decimal(doc["quantity"]), Decimal(doc["taxRatePercent"])
                    )
                    accounts.add(doc["accountId"])
        return sorted(accounts), holdings
