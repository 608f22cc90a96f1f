"""MemoryPositionSnapshotStore: the PositionSnapshotStore and
PositionSnapshotReader ports in memory. As on MongoDB, a stored position is
never replaced: saving a snapshot again (a retried save) keeps what is there."""

from __future__ import annotations

from collections.abc import Sequence

from domain.notices import Holding
from domain.positions import PositionsSnapshot

__all__ = ["MemoryPositionSnapshotStore"]


class MemoryPositionSnapshotStore:
    def __init__(self) -> None:
        self.snapshots: dict[str, PositionsSnapshot] = {}
        self._holdings: dict[str, dict[str, Holding]] = {}  # snapshot id -> account id -> holding

    async def save(self, snapshot_id: str, snapshot: PositionsSnapshot) -> None:
        self.snapshots.setdefault(snapshot_id, snapshot)
        held = self._holdings.setdefault(snapshot_id, {})
        for p in snapshot.positions:
            held.setdefault(p.account_id, Holding(p.quantity, p.tax_rate_percent))

    async def boundaries(self, snapshot_ids: Sequence[str], every: int) -> tuple[list[str], int]:
        # exact: every `every`-th of the sorted union (the Mongo store's marks
        # give the same; its pass over unmarked snapshots is ChunkBoundaries')
        union: set[str] = set()
        total = 0
        for snapshot_id in snapshot_ids:
            held = self._holdings.get(snapshot_id, {})
            union.update(held)
            total += len(held)
        accounts = sorted(union)
        return (["", *accounts[every::every]] if accounts else []), total

    async def between(
        self, snapshot_ids: Sequence[str], first: str, before: str | None
    ) -> tuple[list[str], dict[str, dict[str, Holding]]]:
        holdings: dict[str, dict[str, Holding]] = {}
        for snapshot_id in snapshot_ids:
            holdings[snapshot_id] = {
                account: holding
                for account, holding in self._holdings.get(snapshot_id, {}).items()
                if first <= account and (before is None or account < before)
            }
        accounts = {account for held in holdings.values() for account in held}
        return sorted(accounts), holdings
