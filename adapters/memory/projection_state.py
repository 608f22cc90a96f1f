"""MemoryProjectionState: the ProjectionStateStore port in memory (the
reference the Mongo adapter's contract suite is checked against)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from domain.ports import ProjectionStatus

__all__ = ["MemoryProjectionState"]


class MemoryProjectionState:
    def __init__(self) -> None:
        self._applied: dict[tuple[str, str], int] = {}  # (projection, aggregate id) -> version
        self._through: dict[str, int] = {}
        self._reports: dict[str, ProjectionStatus] = {}

    async def record_applied(self, projection: str, versions: Mapping[str, int]) -> None:
        for aggregate_id, version in versions.items():
            key = (projection, aggregate_id)
            self._applied[key] = max(self._applied.get(key, 0), version)

    async def applied_version(self, projection: str, aggregate_id: str) -> int:
        return self._applied.get((projection, aggregate_id), 0)

    async def applied_versions(
        self, projection: str, aggregate_ids: Iterable[str]
    ) -> dict[str, int]:
        return {
            aggregate_id: self._applied[(projection, aggregate_id)]
            for aggregate_id in set(aggregate_ids)
            if (projection, aggregate_id) in self._applied
        }

    async def applied_through(self, projection: str) -> int:
        return self._through.get(projection, 0)

    async def advance_applied_through(self, projection: str, sequence: int) -> None:
        self._through[projection] = max(self._through.get(projection, 0), sequence)

    async def report(self, projection: str, position: int, lag: int) -> None:
        self._reports[projection] = ProjectionStatus(projection, position, lag, datetime.now(UTC))

    async def statuses(self) -> list[ProjectionStatus]:
        return [self._reports[name] for name in sorted(self._reports)]
