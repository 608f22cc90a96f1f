"""What each projection applied: read-your-writes, checkpoints, progress."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ProjectionStatus:
    """A projector's last reported progress: its consumer group's committed
    `position` and `lag` (events, summed over its partitions), and when;
    `fanout_accounts_remaining`: the accounts its fan-outs under way have
    still to process (summed over their corporate actions) — work the event
    being applied holds, which `lag` does not count."""

    name: str
    position: int
    lag: int
    updated_at: datetime
    fanout_accounts_remaining: int = 0


class FanoutProgress(Protocol):
    """Where a projector notes how far its fan-out of one corporate action is,
    for the read side (`projections { fanoutAccountsRemaining }`) — its own
    process's metric is not what another process's API can read."""

    async def report_fanout(self, projection: str, action_id: str, remaining: int) -> None:
        """Note that `projection` has `remaining` accounts still to process in
        its fan-out of `action_id` (0: the fan-out is over; forgotten).
        Raises StoreError when the store fails."""
        ...


class ProjectionStateStore(FanoutProgress, Protocol):
    """Per projection: the highest stream version applied of each aggregate
    (what consistency tokens wait on), the global sequence through which every
    event of its streams is applied (projections/checkpoint.py), and its
    reported progress, fan-outs under way included. Raises StoreError when
    the store fails."""

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
