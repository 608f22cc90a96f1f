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
from domain.positions import PositionsSnapshot

POSITIONS = "position_snapshots"
WRITE_CHUNK = 5000


def _chunks(items: Sequence[Document], size: int) -> Iterator[Sequence[Document]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MongoPositionStore:
    """The PositionSnapshotStore and PositionSnapshotReader ports on MongoDB."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._positions = db[POSITIONS]

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

    async def boundaries(self, snapshot_ids: Sequence[str], every: int) -> tuple[list[str], int]:
        """Every `every`-th account id of each snapshot (their sorted union) and the
        number of position documents: one streaming pass, O(N / every) memory."""
        marks: set[str] = set()
        total = 0
        async with translated():
            for snapshot_id in snapshot_ids:
                cursor = self._positions.find(
                    {"snapshotId": snapshot_id}, {"_id": 0, "accountId": 1}
                ).sort([("snapshotId", ASCENDING), ("accountId", ASCENDING)])
                seen = 0
                async for doc in cursor:
                    if seen % every == 0:
                        marks.add(doc["accountId"])
                    seen += 1
                total += seen
        return sorted(marks), total

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
