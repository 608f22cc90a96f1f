"""MemoryEventStore: the EventStore port in memory, with the Mongo adapter's
semantics (idempotent appends by event id, one writer per aggregate version,
unique reservations, a global sequence, the outbox's published/parked states)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime

from domain.events import EventEnvelope
from domain.ports import ConcurrencyError, UniqueKeyTaken

__all__ = ["MemoryEventStore"]

_PUBLISHED, _UNPUBLISHED, _PARKED = "published", "unpublished", "parked"


class MemoryEventStore:
    def __init__(self) -> None:
        self._events: dict[str, EventEnvelope] = {}  # by event id, in append order
        self._versions: dict[tuple[str, int], str] = {}  # (aggregate id, version) -> event id
        self._reservations: dict[tuple[str, str], str] = {}  # (namespace, key) -> aggregate id
        self._state: dict[str, str] = {}  # event id -> published / unpublished / parked
        self._sequence = 0

    async def append(
        self,
        events: Sequence[EventEnvelope],
        reservations: Sequence[tuple[str, str]] = (),
        *,
        follows: int | None = None,
    ) -> list[EventEnvelope]:
        # `follows` needs nothing here: the one counter is above every stored sequence.
        if not events:
            return []
        if all(event.event_id in self._events for event in events):
            return [self._events[event.event_id] for event in events]  # already written
        for event in events:
            if event.event_id in self._events or (
                (event.aggregate_id, event.version) in self._versions
            ):
                raise ConcurrencyError(f"{event.aggregate_id} v{event.version} is taken")
        owner = events[0].aggregate_id
        for namespace, key in reservations:
            if (namespace, key) in self._reservations:  # held, whoever holds it
                raise UniqueKeyTaken(namespace, key)
        stored = []
        for event in events:
            self._sequence += 1
            stored.append(replace(event, sequence=self._sequence))
        for event in stored:
            self._events[event.event_id] = event
            self._versions[(event.aggregate_id, event.version)] = event.event_id
            self._state[event.event_id] = _UNPUBLISHED
        for namespace, key in reservations:
            self._reservations[(namespace, key)] = owner
        return stored

    async def load(self, aggregate_id: str, after_version: int = 0) -> list[EventEnvelope]:
        found = [
            e
            for e in self._events.values()
            if e.aggregate_id == aggregate_id and e.version > after_version
        ]
        return sorted(found, key=lambda e: e.version)

    async def get(self, event_id: str) -> EventEnvelope | None:
        return self._events.get(event_id)

    async def stream_heads(
        self, aggregate_ids: Collection[str], before_sequence: int
    ) -> dict[str, int]:
        wanted = set(aggregate_ids)
        heads: dict[str, int] = {}
        for e in self._events.values():
            if e.aggregate_id in wanted and e.sequence < before_sequence:
                heads[e.aggregate_id] = max(heads.get(e.aggregate_id, 0), e.version)
        return heads

    async def unpublished(self, limit: int) -> list[EventEnvelope]:
        found = [e for e in self._events.values() if self._state[e.event_id] == _UNPUBLISHED]
        return found[:limit]

    async def mark_published(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            if event_id in self._state:
                self._state[event_id] = _PUBLISHED

    async def park(self, event_ids: Sequence[str], at: datetime) -> None:
        for event_id in event_ids:
            if self._state.get(event_id) == _UNPUBLISHED:
                self._state[event_id] = _PARKED

    async def unpark(self, event_ids: Sequence[str]) -> int:
        unparked = [e for e in event_ids if self._state.get(e) == _PARKED]
        for event_id in unparked:
            self._state[event_id] = _UNPUBLISHED
        return len(unparked)

    async def read_all(self, after_sequence: int, limit: int) -> list[EventEnvelope]:
        return [e for e in self._events.values() if e.sequence > after_sequence][:limit]
