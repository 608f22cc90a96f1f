"""Depositors' position snapshots at the record date."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.notices import Holding
from domain.positions import PositionsSnapshot


class PositionSnapshotStore(Protocol):
    """Where the positions of a snapshot live (the event carries only a reference:
    a snapshot of 100 000 accounts is far larger than a Kafka message)."""

    async def save(self, snapshot_id: str, snapshot: PositionsSnapshot) -> None: ...


class PositionSnapshotReader(Protocol):
    """The stored snapshots' positions as the notices projector reads them: in
    account order, by bounded ranges, so 100 000 holders never sit in memory
    at once. Raises StoreError when the store fails."""

    async def boundaries(self, snapshot_ids: Sequence[str], every: int) -> tuple[list[str], int]:
        """Chunk boundaries over the snapshots' accounts, and how many positions
        they hold in all. The boundaries are sorted, start with "" (below every
        account id) unless there is no position, and cut chunks of about
        `every` accounts (`domain.positions.chunk_boundaries`: the same
        positions always give the same boundaries)."""
        ...

    async def between(
        self, snapshot_ids: Sequence[str], first: str, before: str | None
    ) -> tuple[list[str], dict[str, dict[str, Holding]]]:
        """The accounts `first` <= id < `before` (None: to the end) that any of
        the snapshots lists, sorted; and each snapshot's holdings of them
        (snapshot id -> account id -> holding)."""
        ...
