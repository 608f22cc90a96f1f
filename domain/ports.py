"""Ports: what the application needs from the outside world, and the errors
adapters translate their drivers' failures into.

Adapters (in `adapters/`) implement these; commands, projections and queries
depend only on them. One contract test suite per port runs against every
adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.events import EventEnvelope
from domain.positions import PositionsSnapshot


class StoreError(Exception):
    """Base of storage failures, modelled on PEP 249's hierarchy."""


class StoreUnavailable(StoreError):
    """The store could not be reached or did not answer in time (retry later)."""


class ConcurrencyError(StoreError):
    """Another writer stored the same aggregate version first."""


class UniqueKeyTaken(StoreError):
    """A unique reservation (e.g. an official reference) is held by another aggregate."""

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(f"{namespace} {key!r} is already taken")
        self.namespace = namespace
        self.key = key


class PublishError(Exception):
    """The event log did not accept the events (broker down, timeout…)."""


class EventStore(Protocol):
    """The durable record of events and the outbox the relay drains."""

    async def append(
        self,
        events: Sequence[EventEnvelope],
        reservations: Sequence[tuple[str, str]] = (),
    ) -> list[EventEnvelope]:
        """Store events (and unique reservations) atomically; return them with sequences.

        Idempotent by event id: when the events are already stored under their
        ids, return what was stored. ConcurrencyError only when another event
        holds one of the (aggregate id, version) pairs; UniqueKeyTaken when
        another aggregate holds a reservation."""
        ...

    async def load(self, aggregate_id: str, after_version: int = 0) -> list[EventEnvelope]: ...

    async def get(self, event_id: str) -> EventEnvelope | None:
        """The event stored under `event_id`, or None."""
        ...

    async def unpublished(self, limit: int) -> list[EventEnvelope]: ...

    async def mark_published(self, event_ids: Sequence[str]) -> None: ...

    async def read_all(self, after_sequence: int, limit: int) -> list[EventEnvelope]: ...


class EventPublisher(Protocol):
    """The event log: publishes envelopes keyed by aggregate id, in order."""

    async def publish(self, events: Sequence[EventEnvelope]) -> None: ...


class PositionSnapshotStore(Protocol):
    """Where the positions of a snapshot live (the event carries only a reference:
    a snapshot of 100 000 accounts is far larger than a Kafka message)."""

    async def save(self, snapshot_id: str, snapshot: PositionsSnapshot) -> None: ...
