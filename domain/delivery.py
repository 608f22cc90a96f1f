"""Delivery of issued notice versions to outbound channels (contract:
"Delivery to channels"; DESIGN.md invariant 6).

Pure rules: what an issued version is (the `NoticeIssued` payload), which
channels it goes to, the stable identity a re-send carries, and how a failed
attempt is classified. The dispatcher (`delivery/`) applies them.

- The preferences in force when the version is planned decide its channels;
  an account without preferences gets the configured default channels. A
  channel that is off (no endpoint configured) or has no address for the
  account is skipped.
- A CANCELLATION goes to every channel an earlier version of the notice was
  planned on and not dead-lettered, at the address that version used.
- Each (notice, version, channel) is one delivery, identified by
  `delivery_id`; its downstream identity comes from (notice, version) only,
  so a re-send after a crash is recognisable by the receiver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from domain import events as ev
from domain.codes import NoticeKind
from domain.preferences import DeliveryChannel, Preferences


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    RETRYING = "RETRYING"
    DEAD_LETTERED = "DEAD_LETTERED"


@dataclass(frozen=True)
class IssuedNotice:
    """One issued version of a depositor notice, as the channels render it."""

    notice_id: str
    version: int
    kind: NoticeKind
    account_id: str
    corporate_action_id: str
    ca_version: int
    issued_at: datetime
    content: Mapping[str, Any] = field(default_factory=dict)
    changed_fields: tuple[str, ...] = ()

    @property
    def reference(self) -> str:
        return str(self.content.get("reference") or self.corporate_action_id)

    def to_payload(self) -> dict[str, Any]:
        return {
            "noticeId": self.notice_id,
            "version": self.version,
            "kind": self.kind.value,
            "accountId": self.account_id,
            "corporateActionId": self.corporate_action_id,
            "caVersion": self.ca_version,
            "issuedAt": self.issued_at.isoformat(),
            "content": dict(self.content),
            "changedFields": list(self.changed_fields),
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> IssuedNotice:
        issued_at = datetime.fromisoformat(str(data["issuedAt"]))
        return cls(
            notice_id=str(data["noticeId"]),
            version=int(data["version"]),
            kind=NoticeKind(data["kind"]),
            account_id=str(data["accountId"]),
            corporate_action_id=str(data["corporateActionId"]),
            ca_version=int(data["caVersion"]),
            issued_at=issued_at if issued_at.tzinfo else issued_at.replace(tzinfo=UTC),
            content=dict(data.get("content") or {}),
            changed_fields=tuple(data.get("changedFields") or ()),
        )


@dataclass(frozen=True)
class OutboundNotice:
    """What one channel sends: the notice version, where to, under which
    identity; `attempt` counts from 1 — a later one may follow a send whose
    outcome was lost (a crash, a timeout), which the channel may have to
    recognise."""

    notice: IssuedNotice
    channel: DeliveryChannel
    address: str
    message_id: str
    attempt: int = 1
    # W3C trace context of the planning (kept in the delivery log): the send continues it
    trace_context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One (notice, version, channel) of the delivery log, as the dispatcher,
    the settler, `herald dlq` and the API read it (without the notice's
    rendered content; `ClaimedDelivery` carries that)."""

    key: str  # delivery_id(notice_id, version, channel)
    notice_id: str
    version: int
    channel: DeliveryChannel
    account_id: str
    address: str
    message_id: str
    status: DeliveryStatus
    attempts: int
    issued_at: datetime
    planned_at: datetime
    delivered_at: datetime | None = None
    last_error: str | None = None
    settled: bool = False
    # W3C trace context of the planning: each attempt's send span continues it
    trace_context: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to one worker for one attempt (counted in `attempts`),
    with the notice version it renders."""

    delivery: Delivery
    notice: IssuedNotice

    @property
    def outbound(self) -> OutboundNotice:
        d = self.delivery
        return OutboundNotice(
            self.notice,
            d.channel,
            d.address,
            d.message_id,
            d.attempts,
            trace_context=d.trace_context,
        )


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: DELIVERED; RETRYING at `retry_at`;
    DEAD_LETTERED; or PENDING again (`retry_at`) — given back uncounted."""

    key: str
    status: DeliveryStatus
    at: datetime
    error: str | None = None
    retry_at: datetime | None = None


def delivery_id(notice_id: str, version: int, channel: DeliveryChannel | str) -> str:
    """The delivery log's key: one delivery per (notice, version, channel)."""
    return f"{notice_id}|{version}|{DeliveryChannel(channel).value}"


def stable_key(notice_id: str, version: int) -> str:
    """The downstream identity of a notice version (push Idempotency-Key; the
    local part of the e-mail Message-ID): the same on every re-send."""
    return f"herald-{notice_id}-v{version}"


def notice_issued_event(notice: IssuedNotice, occurred_at: datetime) -> ev.EventEnvelope:
    """The `NoticeIssued` event of one version. Its id is derived from (notice,
    version), so writing it again (a redelivered batch, a rebuild) is the same
    event; its stream is the notice's issues, versioned like the notice."""
    digest = hashlib.sha256(f"{notice.notice_id}|{notice.version}".encode()).hexdigest()
    return ev.EventEnvelope(
        event_id=f"issued-{digest[:32]}",
        event_name=ev.NOTICE_ISSUED,
        aggregate_type=ev.AGGREGATE_NOTICE_ISSUE,
        aggregate_id=f"{notice.notice_id}:issued",
        version=notice.version,
        occurred_at=occurred_at,
        actor="notices-projector",
        correlation_id=notice.notice_id,
        payload=notice.to_payload(),
    )


# Versions per batched `NoticeIssued` (schema 2): one outbox document and one
# Kafka record (~1 KB a version, under the broker's 1 MiB record limit) stand
# for this many notices, so a fan-out writes ~1/250 of the outbox documents.
ISSUED_PER_EVENT = 250
ISSUED_BATCH_SCHEMA = 2


def issue_stream(action_id: str) -> str:
    """The stream of an action's batched `NoticeIssued` events."""
    return f"{action_id}:issued"


def notices_issued_event(
    action_id: str,
    notices: Sequence[IssuedNotice],
    occurred_at: datetime,
    version: int,
    *,
    delivered_at_issue: bool = False,
) -> ev.EventEnvelope:
    """One `NoticeIssued` (schema 2) for several versions of one corporate
    action's notices: payload `{"notices": [IssuedNotice payload, …]}`; or,
    when the issuer had no outbound channel on and stored them delivered
    (`delivered_at_issue`), `{"notices": [{noticeId, version, accountId,
    kind}, …], "deliveredAtIssue": true}` — the versions named, not rendered
    (nothing renders them; ~100 bytes a version instead of ~1 KB, which the
    outbox, the relay's reads and published marks, and the broker carry):
    the planner leaves those be.

    Its id is derived from the (notice, version) pairs, so writing the same
    batch again (a rerun transaction, a redelivered Kafka batch) is the same
    event. Every batch of an action is in the stream `issue_stream(action)`
    (versions 1, 2, 3 …), so the relay keys them alike and the planner sees an
    action's versions in order (a CANCELLATION after its NEW).
    Raises ValueError for an empty batch."""
    if not notices:
        raise ValueError("a NoticeIssued batch names at least one version")
    keys = "\n".join(f"{n.notice_id}|{n.version}" for n in notices)
    digest = hashlib.sha256(keys.encode()).hexdigest()
    return ev.EventEnvelope(
        event_id=f"issued-batch-{digest[:32]}",
        event_name=ev.NOTICE_ISSUED,
        aggregate_type=ev.AGGREGATE_NOTICE_ISSUE,
        aggregate_id=issue_stream(action_id),
        version=version,
        occurred_at=occurred_at,
        actor="notices-projector",
        correlation_id=action_id,
        payload=(
            {"notices": [_named(n) for n in notices], DELIVERED_AT_ISSUE: True}
            if delivered_at_issue
            else {"notices": [n.to_payload() for n in notices]}
        ),
        schema_version=ISSUED_BATCH_SCHEMA,
    )


DELIVERED_AT_ISSUE = "deliveredAtIssue"


def _named(notice: IssuedNotice) -> dict[str, Any]:
    return {
        "noticeId": notice.notice_id,
        "version": notice.version,
        "accountId": notice.account_id,
        "kind": notice.kind.value,
    }


def delivered_at_issue(event: ev.EventEnvelope) -> bool:
    """Whether a `NoticeIssued` event's versions were stored delivered by
    their issuer: no outbound channel was on there (`plan_channels` with no
    channel enabled plans none, whatever the preferences), so a version
    "counts as delivered at once" already in the transaction that stored it
    (contract: "Delivery to channels"). The planner plans nothing for them."""
    return bool(event.payload.get(DELIVERED_AT_ISSUE))


def issued_versions(event: ev.EventEnvelope) -> list[IssuedNotice]:
    """The versions a `NoticeIssued` event issues: one (schema 1, the payload
    is the version) or a batch (schema 2, `notices_issued_event`). Not for
    a batch `delivered_at_issue` (it names its versions without rendering
    them: KeyError)."""
    if event.schema_version >= ISSUED_BATCH_SCHEMA:
        return [IssuedNotice.from_payload(n) for n in event.payload["notices"]]
    return [IssuedNotice.from_payload(event.payload)]


def plan_channels(
    notice: IssuedNotice,
    preferences: Preferences | None,
    *,
    defaults: Collection[DeliveryChannel],
    enabled: Collection[DeliveryChannel],
    earlier: Mapping[DeliveryChannel, str],
) -> dict[DeliveryChannel, str]:
    """The channels (and addresses) this version goes to.

    `earlier`: the channels earlier versions of the notice were planned on
    (not dead-lettered) and the address each used — what a CANCELLATION follows.
    """
    if notice.kind is NoticeKind.CANCELLATION:
        return {c: a for c, a in earlier.items() if c in enabled}
    chosen = defaults if preferences is None else preferences.channels
    planned: dict[DeliveryChannel, str] = {}
    for channel in chosen:
        address = None if preferences is None else preferences.address(channel)
        if channel in enabled and address:
            planned[channel] = address
    return planned


def is_transient_status(status_code: int) -> bool:
    """HTTP answers worth retrying (contract: 408/429/5xx); other 4xx are permanent."""
    return status_code in (408, 429) or status_code >= 500


def parse_channels(raw: str) -> tuple[DeliveryChannel, ...]:
    """A comma-separated channel list (HERALD_DEFAULT_CHANNELS); ValueError names a bad one."""
    channels: list[DeliveryChannel] = []
    for part in raw.split(","):
        name = part.strip().upper()
        if not name:
            continue
        try:
            channels.append(DeliveryChannel(name))
        except ValueError:
            raise ValueError(f"unknown channel {part.strip()!r} (EMAIL, PUSH, SWIFT)") from None
    return tuple(dict.fromkeys(channels))
