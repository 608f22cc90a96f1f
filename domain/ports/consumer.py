"""Consuming the event log: a consumer-group member feeding a projector."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from domain.events import EventEnvelope


class LogPartition(NamedTuple):
    """One partition of one topic of the event log."""

    topic: str
    partition: int


@dataclass(frozen=True)
class ConsumedRecord:
    """One record as read: where it is, its value, and the envelope it decodes
    to — or, for a record that does not decode, why not (`event` is None)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    event: EventEnvelope | None
    error: str | None = None


@dataclass(frozen=True)
class ConsumedBatch:
    """What one poll of the log returned, in partition order."""

    records: list[ConsumedRecord]
    # next offset to consume per partition, committed once the batch is applied
    offsets: dict[LogPartition, int]

    @property
    def events(self) -> list[EventEnvelope]:
        return [record.event for record in self.records if record.event is not None]

    @property
    def undecodable(self) -> list[ConsumedRecord]:
        return [record for record in self.records if record.event is None]


class EventConsumer(Protocol):
    """A member of one consumer group on the event log. Offsets are committed
    only when the caller says so (after the batch's effects are stored); a
    failure to reach the log raises PublishError."""

    async def start(self) -> None:
        """Join the group (PublishError when the log cannot be reached)."""
        ...

    async def next_batch(self, timeout_ms: int = 500, max_records: int = 500) -> ConsumedBatch:
        """The records fetched within `timeout_ms` (possibly none)."""
        ...

    async def commit(self, offsets: Mapping[LogPartition, int]) -> None:
        """Commit these next offsets; a commit lost to a rebalance is only logged
        (the new owner re-applies from the last committed offset)."""
        ...

    async def lag(self) -> tuple[int, int] | None:
        """(position, lag) summed over this member's partitions; None when unknown."""
        ...

    def joined(self) -> bool:
        """True once the group gave this member its partitions (possibly none)."""
        ...

    async def progress(self) -> tuple[dict[str, int], dict[str, int]]:
        """(committed, end) offsets of this member's partitions, keyed "topic:partition"."""
        ...

    async def rewind(self) -> None:
        """Read every partition this member owns again from its start: the
        broker lost the log and a re-fill is writing a new one, where the
        lost log's positions (and offsets committed since) mean nothing. No
        partition owned, or not started: nothing to do."""
        ...

    async def stop(self) -> None: ...
