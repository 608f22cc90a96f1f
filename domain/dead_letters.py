"""Dead letters: records Herald parked because they can never be applied as
they are, so that one bad record stops nothing behind it.

A dead letter names where it comes from (`source`), why it was parked, and
where to find the record again; `herald dlq list` shows them and `herald dlq
replay` re-applies them once the cause is fixed. The shape is shared by every
parking place:

- `projection:<name>` — a Kafka record a projector could not decode or apply
  (topic, partition and offset given; `payload` is the record's value);
- `outbox` — a stored event the broker refuses for good (the event stays in the
  event store, marked parked; `payload` is empty);
- `delivery:<channel>` — a notice a delivery channel refuses for good.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

SOURCE_OUTBOX = "outbox"
PROJECTION_SOURCE_PREFIX = "projection:"
DELIVERY_SOURCE_PREFIX = "delivery:"

# Record values longer than this are stored cut (the event store and the
# dead-letter topic keep the whole record; the letter is for the operator).
MAX_PAYLOAD_CHARS = 64_000


class DeadLetterStatus(StrEnum):
    PARKED = "parked"  # waiting for an operator
    REPLAYED = "replayed"  # applied again successfully


def projection_source(projection: str) -> str:
    return f"{PROJECTION_SOURCE_PREFIX}{projection}"


def delivery_source(channel: str) -> str:
    return f"{DELIVERY_SOURCE_PREFIX}{channel}"


@dataclass(frozen=True)
class DeadLetter:
    """One parked record.

    `id` is stable for the same record (source + topic/partition/offset, or
    source + event id), so parking a redelivered record again updates one
    letter. `kind` classifies the reason ("undecodable", or the error's type,
    e.g. "OverflowError", "MessageSizeTooLargeError"); `reason` is the error
    message, one line. `attempts` counts failed applications (parking is the
    first). Times are timezone-aware UTC.
    """

    id: str
    source: str
    kind: str
    reason: str
    parked_at: datetime
    event_id: str | None = None
    aggregate_type: str | None = None
    aggregate_id: str | None = None
    version: int | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    payload: str | None = None
    status: DeadLetterStatus = DeadLetterStatus.PARKED
    attempts: int = 1
    replayed_at: datetime | None = None


def letter_id(source: str, *where: object) -> str:
    """The stable id of a dead letter: its source and where the record is."""
    return "|".join([source, *(str(part) for part in where)])


def one_line(error: BaseException) -> str:
    """An error as one line for an operator: its type and message, bounded."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:1000]
