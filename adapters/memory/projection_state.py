"""MemoryProjectionState: the ProjectionStateStore port in memory (the
reference the Mongo adapter's contract suite is checked against)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from domain.ports import ProjectionStatus

__all__ = ["MemoryProjectionState"]


class MemoryProjectionState:
    def __init__(self) -> None:
        self._applied: dict[tuple[str, str], int] = {}  # (projection, aggregate id) -> version
        self._through: dict[str, int] = {}
        self._reports: dict[str, ProjectionStatus] = {}
        self._fanouts: dict[str, dict[str, int]] = {}  # projection -> action id -> accounts

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

    async def report_fanout(self, projection: str, action_id: str, remaining: int) -> None:
        fanouts = self._fanouts.setdefault(projection, {})
        if remaining > 0:
            fanouts[action_id] = remaining
        else:
            fanouts.pop(action_id, None)
        if projection not in self._reports:  # a fan-out before the first report
            self._reports[projection] = ProjectionStatus(projection, 0, 0, datetime.now(UTC))

    async def statuses(self) -> list[ProjectionStatus]:
        return [
            replace(
                self._reports[name],
                fanout_accounts_remaining=sum(self._fanouts.get(name, {}).values()),
            )
            for name in sorted(self._reports)
        ]
