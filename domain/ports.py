"""Ports: what the application needs from the outside world, and the errors
adapters translate their drivers' failures into.

Adapters (in `adapters/`) implement these; commands, projections and queries
depend only on them. One contract test suite per port runs against every
adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from domain.delivery import OutboundNotice
from domain.events import EventEnvelope
from domain.positions import PositionsSnapshot
from domain.preferences import DeliveryChannel


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


class Reservation(Protocol):
    namespace: str
    key: str


class EventStore(Protocol):
    """The durable record of events and the outbox the relay drains."""

    async def append(
        self,
        events: Sequence[EventEnvelope],
        reservations: Sequence[tuple[str, str]] = (),
    ) -> list[EventEnvelope]:
        """Store events (and unique reservations) atomically; return them with sequences."""
        ...

    async def load(self, aggregate_id: str, after_version: int = 0) -> list[EventEnvelope]: ...

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


# --- delivery to channels (contract: "Delivery to channels") -------------------


class ChannelError(Exception):
    """A channel could not deliver a message. `transient`: worth retrying
    (timeouts, 408/429/5xx, a refused connection); otherwise permanent (the
    receiver rejected this message: retrying it unchanged cannot succeed)."""

    transient: bool = True


class TransientChannelError(ChannelError):
    transient = True


class PermanentChannelError(ChannelError):
    transient = False


class Channel(Protocol):
    """One outbound channel (e-mail, push, SWIFT).

    `message_id(notice_id, version)` is the stable downstream identity of a
    notice version on this channel (Message-ID, Idempotency-Key, SEME): the
    same on every call, so a re-send after a crash is recognisable. `send`
    delivers one message carrying `message.message_id`, returning normally
    only when the receiver accepted it; it raises TransientChannelError or
    PermanentChannelError, never anything else for a delivery failure.
    """

    channel: DeliveryChannel

    def message_id(self, notice_id: str, version: int) -> str: ...

    async def send(self, message: OutboundNotice) -> None: ...

    async def close(self) -> None: ...
