"""MongoPositionStore: positions snapshots, one document per account.

The durable body of a PositionsRecorded event (whose payload only names the
snapshot). Documents are immutable once written, so replaying the log always
finds the same positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.notices import Holding
from domain.positions import PositionsSnapshot

POSITIONS = "position_snapshots"
WRITE_CHUNK = 5000


def _chunks(items: Sequence[Document], size: int) -> Iterator[Sequence[Document]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MongoPositionStore:
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
                "quantity": str(p.quantity),
                "taxRatePercent": str(p.tax_rate_percent),
            }
            for p in snapshot.positions
        ]
        async with translated():
            for chunk in _chunks(documents, WRITE_CHUNK):
                try:
                    await self._positions.insert_many(chunk, ordered=False)
                except BulkWriteError as exc:  # a retried save: the documents are there
                    errors = exc.details.get("writeErrors", [])
                    if any(e.get("code") != 11000 for e in errors):
                        raise

    async def accounts(self, snapshot_ids: Sequence[str]) -> list[str]:
        """Every account any of the snapshots lists, sorted."""
        if not snapshot_ids:
            return []
        async with translated():
            found = await self._positions.distinct(
                "accountId", {"snapshotId": {"$in": list(snapshot_ids)}}
            )
        return sorted(str(a) for a in found)

    async def holdings(
        self, snapshot_ids: Sequence[str], accounts: Sequence[str]
    ) -> dict[str, dict[str, Holding]]:
        """holdings[snapshot][account] for the given accounts, in one round trip."""
        result: dict[str, dict[str, Holding]] = {s: {} for s in snapshot_ids}
        if not snapshot_ids or not accounts:
            return result
        async with translated():
            cursor = self._positions.find(
                {"snapshotId": {"$in": list(snapshot_ids)}, "accountId": {"$in": list(accounts)}},
                {"_id": 0, "snapshotId": 1, "accountId": 1, "quantity": 1, "taxRatePercent": 1},
            )
            async for doc in cursor:
                result[doc["snapshotId"]][doc["accountId"]] = Holding(
                    Decimal(doc["quantity"]), Decimal(doc["taxRatePercent"])
                )
        return result
