"""The event record, its outbox and the log: storing events, publishing
them, parking what cannot be."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from domain.dead_letters import DeadLetter, DeadLetterStatus
from domain.events import EventEnvelope


class EventStore(Protocol):
    """The durable record of events and the outbox the relay drains."""

    async def append(
        self,
        events: Sequence[EventEnvelope],
        reservations: Sequence[tuple[str, str]] = (),
        *,
        follows: int | None = None,
    ) -> list[EventEnvelope]:
        """Store events (and unique reservations) atomically; return them with sequences.

        `follows`: the global sequence of the stream head the events follow,
        as the caller loaded it (0 for a new stream; None when unknown). The
        events' sequences are above it and above every sequence of their
        stream stored before, so one aggregate's sequences rise with its
        versions; knowing it lets a store hand out sequences it reserved
        earlier instead of allocating them on each append.

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

    async def park(self, event_ids: Sequence[str], at: datetime) -> None:
        """Take events out of the outbox for good (the broker refuses them)."""
        ...

    async def unpark(self, event_ids: Sequence[str]) -> int:
        """Queue parked events for publishing again; returns how many."""
        ...

    async def read_all(self, after_sequence: int, limit: int) -> list[EventEnvelope]: ...

    async def stream_heads(
        self, aggregate_ids: Collection[str], before_sequence: int
    ) -> dict[str, int]:
        """For each of `aggregate_ids` with an event stored at a global
        sequence below `before_sequence`: the highest version among those
        events. Streams with none are absent."""
        ...


class DeadLetterStore(Protocol):
    """Where parked records are kept durably (see domain/dead_letters.py)."""

    async def park(self, letter: DeadLetter) -> None:
        """Store `letter`; parking the same id again counts one more attempt."""
        ...

    async def find(
        self,
        source_prefix: str | None = None,
        ids: Sequence[str] = (),
        status: DeadLetterStatus | None = DeadLetterStatus.PARKED,
    ) -> list[DeadLetter]:
        """Letters whose source starts with `source_prefix` (all when None),
        limited to `ids` when given, in the order they were parked."""
        ...

    async def replayed(self, letter_id: str, at: datetime, *, attempts: int) -> None:
        """Mark the letter replayed, unless it was parked again (its attempts
        moved past `attempts`) while the replay ran: a replayed outbox event
        goes back to an asynchronous relay, which may refuse and re-park it
        before this call."""
        ...

    async def failed_again(self, letter_id: str, reason: str, at: datetime) -> None: ...


class DeadLetterTopic(Protocol):
    """The event log's copy of parked records (`<prefix>.deadletter.<name>`)."""

    async def send(self, letter: DeadLetter, value: bytes | None) -> None: ...


class EventPublisher(Protocol):
    """The event log: publishes envelopes keyed by aggregate id, in order."""

    async def publish(self, events: Sequence[EventEnvelope]) -> None: ...
