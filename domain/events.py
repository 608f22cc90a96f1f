"""Events and their envelope.

An event is a fact in the life of one aggregate (a corporate action, the
positions of one security at one date, or one depositor notice). The
envelope carries what every consumer needs to stay idempotent and ordered:
the event id, the aggregate id and its stream version, and who did it when
and why (actor, correlation id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1

AGGREGATE_CORPORATE_ACTION = "corporate-action"
AGGREGATE_POSITIONS = "positions"
AGGREGATE_NOTICE = "notice"
AGGREGATE_PREFERENCES = "preferences"
# Derived by the notices projector (see domain/delivery.py), one per issued notice version
AGGREGATE_NOTICE_ISSUE = "notice-issue"

# Corporate-action stream
CORPORATE_ACTION_ANNOUNCED = "CorporateActionAnnounced"
CORPORATE_ACTION_AMENDED = "CorporateActionAmended"
CORPORATE_ACTION_CANCELLED = "CorporateActionCancelled"
PUBLICATION_APPROVED = "PublicationApproved"
# Positions stream
POSITIONS_RECORDED = "PositionsRecorded"
# Notice stream (one per depositor notice): what the depositor did with it
NOTICE_ACKNOWLEDGED = "NoticeAcknowledged"
# Preferences stream (one per account): where its notices go
NOTIFICATION_PREFERENCES_SET = "NotificationPreferencesSet"
# Notice-issue stream (one per notice): each version the notices projection issued
NOTICE_ISSUED = "NoticeIssued"


@dataclass(frozen=True)
class NewEvent:
    """What a decision produces: the event's name (e.g. "PublicationApproved";
    not the CAEV code, which is the terms' `event_type`) and a JSON-compatible
    payload."""

    event_name: str
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class CommandOrigin:
    """The request whose command recorded an event (invariant 3).

    `command_id` names one execution of one caller's Idempotency-Key: it is
    kept when an abandoned claim of the key is taken over, so the events a
    command stored before a crash are found again (their ids derive from it)
    instead of being decided a second time. `key` is the caller-scoped key,
    `fingerprint` the sha256 of the canonical request.
    """

    command_id: str
    key: str
    fingerprint: str


@dataclass(frozen=True)
class EventEnvelope:
    """A recorded event.

    `version` is the aggregate's stream version (1, 2, 3 …): unique per
    aggregate, it is what makes concurrent writers conflict and what lets
    consumers drop duplicates and detect gaps. `sequence` is the position in
    Herald's global event record, assigned when the event is stored. `origin`
    ties the event to the Idempotency-Key of the request that recorded it
    (None for an event recorded outside an HTTP request). `trace_context` is
    the W3C Trace Context (`traceparent`, `tracestate`) of the work that
    recorded it: stored in the event's metadata, sent as Kafka headers (not in
    the record's value), empty for an event recorded untraced or before
    traces were kept.
    """

    event_id: str
    event_name: str  # the event-sourcing name; the CAEV code is the terms' event_type
    aggregate_type: str
    aggregate_id: str
    version: int
    occurred_at: datetime
    actor: str
    correlation_id: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    sequence: int = 0
    # Stored with the event, not published: which request recorded it.
    origin: CommandOrigin | None = None
    # Stored and sent as headers, not in the value: where the event's trace
    # continues. Not part of the event's identity (compare=False): a record
    # read back carries the context of the send that carried it.
    trace_context: Mapping[str, str] = field(default_factory=dict, compare=False)


def to_json(event: EventEnvelope) -> dict[str, Any]:
    """The wire form of an envelope (Kafka message value, JSON-compatible)."""
    return {
        "eventId": event.event_id,
        "eventType": event.event_name,  # the stored field keeps its name
        "aggregateType": event.aggregate_type,
        "aggregateId": event.aggregate_id,
        "version": event.version,
        "occurredAt": event.occurred_at.isoformat(),
        "actor": event.actor,
        "correlationId": event.correlation_id,
        "schemaVersion": event.schema_version,
        "sequence": event.sequence,
        "payload": dict(event.payload),
    }


def from_json(data: Mapping[str, Any]) -> EventEnvelope:
    """Inverse of `to_json`; raises KeyError/ValueError/TypeError on a malformed record."""
    return EventEnvelope(
        event_id=str(data["eventId"]),
        event_name=str(data["eventType"]),
        aggregate_type=str(data["aggregateType"]),
        aggregate_id=str(data["aggregateId"]),
        version=int(data["version"]),
        occurred_at=datetime.fromisoformat(str(data["occurredAt"])),
        actor=str(data["actor"]),
        correlation_id=str(data["correlationId"]),
        schema_version=int(data["schemaVersion"]),
        sequence=int(data.get("sequence", 0)),
        payload=dict(data["payload"]),
    )
