"""What each projection applied: read-your-writes, checkpoints, progress."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ProjectionStatus:
    """A projector's last reported progress: its consumer group's committed
    `position` and `lag` (events, summed over its partitions), and when."""

    name: str
    position: int
    lag: int
    updated_at: datetime


class ProjectionStateStore(Protocol):
    """Per projection: the highest stream version applied of each aggregate
    (what consistency tokens wait on), the global sequence through which every
    event of its streams is applied (projections/checkpoint.py), and its
    reported progress. Raises StoreError when the store fails."""

    async def record_applied(self, projection: str, versions: Mapping[str, int]) -> None:
        """Raise each aggregate's applied version to the one given (never lowers it)."""
        ...

    async def applied_version(self, projection: str, aggregate_id: str) -> int:
        """The highest version of the aggregate `projection` applied (0: none)."""
        ...

    async def applied_versions(
        self, projection: str, aggregate_ids: Iterable[str]
    ) -> dict[str, int]:
        """The highest version applied of each of `aggregate_ids` (absent: none)."""
        ...

    async def applied_through(self, projection: str) -> int:
        """The global sequence through which `projection` applied every event
        of its streams (0: none known)."""
        ...

    async def advance_applied_through(self, projection: str, sequence: int) -> None:
        """Raise the checkpoint to `sequence` (never lowers it)."""
        ...

    async def report(self, projection: str, position: int, lag: int) -> None: ...

    async def statuses(self) -> list[ProjectionStatus]:
        """Every projection's last report, by name."""
        ...
