"""Ports: what the application needs from the outside world, and the errors
adapters translate their drivers' failures into.

Adapters (in `adapters/`) implement these; commands, projections and queries
depend only on them. One contract test suite per port runs against every
adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from domain.corporate_action import CorporateAction
from domain.dead_letters import DeadLetter, DeadLetterStatus
from domain.delivery import ClaimedDelivery, Delivery, OutboundNotice, Outcome
from domain.events import EventEnvelope
from domain.idempotency import IdempotencyRecord, StoredResponse
from domain.notices import Holding, NoticeState
from domain.positions import PositionsSnapshot
from domain.preferences import DeliveryChannel, Preferences


class StoreError(Exception):
    """Base of storage failures, modelled on PEP 249's hierarchy."""


class StoreUnavailable(StoreError):
    """The store could not be reached or did not answer in time (retry later)."""


class StoreRefused(StoreError):
    """The store will never accept this write as it is (a document too large, a
    number it cannot represent): retrying cannot help; park the record."""


class DuplicateKey(StoreError):
    """A write met a record already stored under one of its unique keys.

    `key` names the key's fields and values as the store reported them (empty
    when it did not say; of a batch, the first duplicate's). Adapters raise it
    for every duplicate, so "already there" is told apart from failure in one
    place (the Mongo adapters' `translated()`); callers decide what it means.
    """

    def __init__(
        self, message: str, key: Mapping[str, object] | None = None, *, written: int = 0
    ) -> None:
        super().__init__(message)
        self.key: Mapping[str, object] = dict(key or {})
        # of a batch written unordered: how many records were stored all the same
        self.written = written


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


class PublishRefused(PublishError):
    """The broker refuses some records for good (too large, invalid): `refused`
    maps each such event id to the reason. The others were published."""

    def __init__(self, refused: Mapping[str, str]) -> None:
        super().__init__(f"{len(refused)} record(s) refused: {next(iter(refused.values()), '')}")
        self.refused = dict(refused)


def is_transient(error: BaseException) -> bool:
    """True for a failure that retrying the same work may cure (the store or the
    broker unreachable or slow); False for one the work itself causes, which
    must be parked rather than retried for ever. Adapters classify their
    drivers' errors into these port errors (adapters/*/errors)."""
    if isinstance(error, PublishRefused | StoreRefused):
        return False
    return isinstance(error, StoreUnavailable | PublishError | TimeoutError | ConnectionError)


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

    async def park(self, event_ids: Sequence[str], at: datetime) -> None:
        """Take events out of the outbox for good (the broker refuses them)."""
        ...

    async def unpark(self, event_ids: Sequence[str]) -> int:
        """Queue parked events for publishing again; returns how many."""
        ...

    async def read_all(self, after_sequence: int, limit: int) -> list[EventEnvelope]: ...


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


class PositionSnapshotStore(Protocol):
    """Where the positions of a snapshot live (the event carries only a reference:
    a snapshot of 100 000 accounts is far larger than a Kafka message)."""

    async def save(self, snapshot_id: str, snapshot: PositionsSnapshot) -> None: ...


class PositionSnapshotReader(Protocol):
    """The stored snapshots' positions as the notices projector reads them: in
    account order, by bounded ranges, so 100 000 holders never sit in memory
    at once. Raises StoreError when the store fails."""

    async def boundaries(self, snapshot_ids: Sequence[str], every: int) -> tuple[list[str], int]:
        """Every `every`-th account id of each snapshot (their sorted union), and
        how many positions the snapshots hold in all."""
        ...

    async def between(
        self, snapshot_ids: Sequence[str], first: str, before: str | None
    ) -> tuple[list[str], dict[str, dict[str, Holding]]]:
        """The accounts `first` <= id < `before` (None: to the end) that any of
        the snapshots lists, sorted; and each snapshot's holdings of them
        (snapshot id -> account id -> holding)."""
        ...


# --- consuming the event log (a consumer-group member feeding a projector) --------


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

    async def stop(self) -> None: ...


# --- what each projection applied (read-your-writes, checkpoints, progress) -------


@dataclass(frozen=True)
class ProjectionStatus:
    """A projector's last reported progress: its consumer group's committed
    `position` and `lag` (events, summed over its partitions), and when."""

    name: str
    position: int
    lag: int
    updated_at: datetime


class ProjectionStateStore(Protocol):
    """Per projection: the highest stream version applied of each aggregate
    (what consistency tokens wait on), the global sequence through which every
    event of its streams is applied (projections/checkpoint.py), and its
    reported progress. Raises StoreError when the store fails."""

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


class IdempotencyStore(Protocol):
    """Where Idempotency-Keys are claimed and responses recorded; raises
    StoreError when down."""

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Store `record` as in flight unless its key is held: None when claimed,
        else the record that holds the key."""
        ...

    async def take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        """Replace `held` by `record` (in flight) if `held` is still what is stored
        (or `record` already is: a resent takeover)."""
        ...

    async def complete(
        self, record: IdempotencyRecord, response: StoredResponse, expires_at: datetime
    ) -> bool:
        """Record the response of `record`'s claim; False if the claim is no longer ours."""
        ...

    async def release(self, record: IdempotencyRecord) -> None:
        """Mark `record`'s in-flight claim (if still ours) released, keeping its
        command id, so that a retry runs — or finds what the command stored."""
        ...


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


class DeliveryLog(Protocol):
    """The dispatcher's record of what goes out: one delivery per (notice,
    version, channel), recorded before any call and drained by the channel
    workers (delivery/). Exactly once: `plan` records each delivery once;
    `claim` counts an attempt and leases the delivery before the call;
    `record` stores the outcome after it. A lease that runs out (a worker
    died between the two) makes the delivery due again, re-sent under the
    same message id."""

    async def plan(self, outbound: Sequence[OutboundNotice], now: datetime) -> int:
        """Record the deliveries not recorded yet (PENDING, due `now`); returns
        how many were new. One already recorded stays as it is."""
        ...

    async def earlier_channels(
        self, versions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[DeliveryChannel, str]]:
        """For each (notice, version): the channels earlier versions were
        planned on and not dead-lettered, with the address the latest used."""
        ...

    async def due(self, channel: DeliveryChannel, now: datetime, limit: int) -> list[str]:
        """Keys of up to `limit` open deliveries of `channel` due by `now` and
        not leased, the longest due first."""
        ...

    async def claim(
        self, keys: Sequence[str], now: datetime, lease: timedelta
    ) -> list[ClaimedDelivery]:
        """Of `keys`, those still due and not leased: count an attempt on each
        and lease it to this caller until `now + lease`."""
        ...

    async def record(self, outcomes: Sequence[Outcome]) -> set[str]:
        """Store the outcomes of claimed deliveries (a DELIVERED one stays
        delivered); returns the keys recorded as delivered."""
        ...

    async def unsettled(self, limit: int) -> list[tuple[str, int]]:
        """Up to `limit` (notice, version)s with a delivery delivered whose
        notice-level outcome is not recorded yet (not settled)."""
        ...

    async def settle(self, keys: Sequence[str]) -> None:
        """The notice-level outcome of these deliveries is recorded."""
        ...

    async def of_version(self, notice_id: str, version: int) -> list[Delivery]:
        """The deliveries of one notice version, by channel."""
        ...

    async def of_notices(
        self, versions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Delivery]]:
        """The deliveries of each (notice, version), by channel."""
        ...

    async def dead_letters(self, channel: DeliveryChannel | None = None) -> list[Delivery]:
        """Dead-lettered deliveries (of `channel`; all: None), by channel and key."""
        ...

    async def requeue(self, key: str, address: str | None, now: datetime) -> bool:
        """Put a dead letter back in its channel's queue with fresh attempts
        (at `address` when given); False when it is not dead-lettered."""
        ...


@dataclass(frozen=True)
class StoredPreferences:
    """An account's preferences as stored: the state, its stream version,
    when it was set."""

    preferences: Preferences
    version: int
    updated_at: datetime


class PreferenceStore(Protocol):
    """The notification preferences read model (written by the preferences
    projector), with each account's recent history: the dispatcher plans a
    notice version from the preferences in force when it was issued."""

    async def save(
        self, preferences: Preferences, version: int, sequence: int, updated_at: datetime
    ) -> bool:
        """Store stream `version` of the account's preferences, set at global
        `sequence`; False when that version or a newer one is stored."""
        ...

    async def get(self, account_id: str) -> StoredPreferences | None:
        """The account's current preferences, or None."""
        ...

    async def current(self, account_ids: Collection[str]) -> dict[str, Preferences]:
        """The current preferences of those of `account_ids` that have any."""
        ...

    async def in_force(
        self, wanted: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], Preferences]:
        """For each (account, global sequence): the preferences in force at
        that point of the log (the latest set at or before it; a sequence of 0
        or less: the current ones). Absent: none were set by then."""
        ...


class NoticeDeliveryMarks(Protocol):
    """What the dispatcher writes to the notices read model."""

    async def mark_delivered(self, versions: Sequence[tuple[str, int]], at: datetime) -> int:
        """Every chosen channel delivered these (notice, version)s (or they had
        none): set each notice's `deliveredAt` (and its action's delivered
        count) while it is still at that version and not yet marked. Returns
        how many notices were marked."""
        ...


# --- the cards read model ---------------------------------------------------------


@dataclass(frozen=True)
class CardQuery:
    """Filter of the card list, on the view a reader sees (the published
    version, else the pending one). `public_only` restricts to published cards;
    dates are ISO `YYYY-MM-DD`, inclusive."""

    public_only: bool = True
    isin: str | None = None
    event_types: Sequence[str] = ()
    statuses: Sequence[str] = ()
    record_date_from: str | None = None
    record_date_to: str | None = None
    ids: Sequence[str] = field(default_factory=tuple)


class CardStore(Protocol):
    """One card per corporate action (its folded state), written by the card
    projector under a revision guard and read by the API."""

    async def get(self, action_id: str) -> CorporateAction | None: ...

    async def get_many(self, ids: Sequence[str]) -> dict[str, CorporateAction]:
        """The cards of those of `ids` that exist, by id."""
        ...

    async def save(self, state: CorporateAction, previous_revision: int) -> bool:
        """Store `state` if the stored card is still at `previous_revision` (0: none
        stored yet); False when it is not (a stale or repeated apply)."""
        ...

    async def page(
        self, query: CardQuery, first: int, after: str | None
    ) -> tuple[list[CorporateAction], bool]:
        """Up to `first` cards matching `query`, newest first (ids are
        time-ordered), after the card `after`; and whether more follow."""
        ...

    async def count(self, query: CardQuery) -> int: ...


# --- the notices read model as the notices projector writes it --------------------


@dataclass(frozen=True)
class StoredIssue:
    """What the read model holds of one account's notice, as a reconcile plan
    reads it: the issue stored (version, content hash) and its acknowledgement."""

    version: int
    content_hash: str
    acknowledged_at: datetime | None = None


@dataclass(frozen=True)
class NoticeRecord:
    """One notice as the notices projector writes it: the latest issue
    (`notice`) of one account's notice of one corporate action.
    `acknowledged_at` is kept from the stored notice of the same issue; when
    every chosen channel delivered the issue is the store's own record."""

    notice_id: str
    corporate_action_id: str
    notice: NoticeState
    acknowledged_at: datetime | None = None

    @property
    def account_id(self) -> str:
        return self.notice.account_id

    @property
    def version(self) -> int:
        return self.notice.version


# Of one range of accounts: the notices to write, given what is stored of them
# (by account id). Pure: it may run more than once (a transaction started over).
NoticePlan = Callable[[Mapping[str, StoredIssue]], Sequence[NoticeRecord]]


class NoticeProjectionStore(Protocol):
    """The notices read model as the notices projector writes it, and which
    corporate actions follow which (ISIN, record date). Writes are guarded by
    the notice version: a stale or repeated write never replaces a newer
    notice, and the per-action counts move with the notices. Raises
    StoreError when the store fails."""

    async def subscribe(self, action_id: str, pairs: Iterable[tuple[str, date]]) -> None:
        """Remember that the action follows the positions of these (ISIN, record date)s."""
        ...

    async def subscribers(self, isin: str, as_of: str) -> list[str]:
        """The actions following the positions of `isin` on `as_of` (YYYY-MM-DD)."""
        ...

    async def reconcile_range(self, action_id: str, first: str, last: str, plan: NoticePlan) -> int:
        """Atomically: read what is stored of the action's notices of accounts
        `first`..`last` (inclusive), ask `plan` for the notices to write, write
        each that is absent or newer than the stored one (and its NoticeIssued
        event, where the store records them). Returns how many were written."""
        ...

    async def acknowledge(self, notice_id: str, version: int, at: datetime) -> bool:
        """Mark `version` of the notice acknowledged at `at`, only while it is
        still the stored version and unacknowledged; True when it was marked."""
        ...


# --- the notices read model (depositors' reads, operators' counts) ----------------

# A notice as the notices projector stores it: its id, corporateActionId,
# accountId, version, kind, content, issuedAt, acknowledgedAt, deliveredAt…
StoredNotice = Mapping[str, Any]


class NoticeReadStore(Protocol):
    """The notices read model as the API reads it. Every depositor read takes
    the caller's accounts and applies them in the store's query (invariant 5):
    a notice of another account is never fetched."""

    async def page_for_accounts(
        self,
        accounts: Collection[str],
        first: int,
        after: tuple[datetime, str] | None,
        unread_only: bool,
    ) -> tuple[Sequence[StoredNotice], bool]:
        """Up to `first` notices of `accounts`, newest first (issuedAt, then id),
        strictly after the (issuedAt, id) cursor; and whether more follow."""
        ...

    async def count_for_accounts(self, accounts: Collection[str], unread_only: bool) -> int: ...

    async def get_for_accounts(
        self, notice_id: str, accounts: Collection[str]
    ) -> StoredNotice | None:
        """The notice if one of `accounts` holds it, else None (indistinguishable)."""
        ...

    async def by_action(self, action_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """(total, delivered, acknowledged) notices per corporate action that has any."""
        ...

    async def page_for_action(
        self, action_id: str, first: int, after: str | None
    ) -> tuple[Sequence[StoredNotice], bool]:
        """Operators: up to `first` notices of one action in account order,
        after the account `after`; and whether more follow."""
        ...


# --- change feeds of the read models (subscriptions, the public-cache watermark) ----

T_co = TypeVar("T_co", covariant=True)


class FeedSignal(StrEnum):
    """What a change feed says: a marker of its stream's state, or a change."""

    OPENED = "opened"  # (re)opened by resuming: nothing was missed
    RESET = "reset"  # opened at "now": changes before this may have been missed
    CLOSED = "closed"  # interrupted: nothing arrives until the next OPENED or RESET
    CHANGED = "changed"  # a watched record changed


@dataclass(frozen=True)
class FeedChange(Generic[T_co]):
    """One change of a watched read model, or an OPENED / RESET / CLOSED marker.
    `item` (of a CHANGED): what subscribers receive — None for a change that
    matters only as a change (e.g. to a cache watermark)."""

    signal: FeedSignal
    item: T_co | None = None


class NoticeIssueFeed(Protocol):
    """Notices of the followed accounts as they are issued (NEW, UPDATE or
    CANCELLATION: stored, or stored at a new version; an acknowledgement is
    not an issue). The accounts are applied by the store, as in every other
    read (invariant 5)."""

    @property
    def name(self) -> str: ...

    def follow(
        self, accounts: Callable[[], Collection[str]], reopen: asyncio.Event
    ) -> AsyncGenerator[FeedChange[StoredNotice], None]:
        """The issues for as long as the caller iterates. Each (re)open yields
        OPENED or RESET first and an interruption CLOSED; `accounts()` is read
        at every open, and setting `reopen` makes the next one."""
        ...


class CardPublicationFeed(Protocol):
    """Changes of the public view of the cards as they happen: `item` is the
    card when a version of it was published, None for another change of its
    public view (a card stored over by another writer)."""

    @property
    def name(self) -> str: ...

    def follow(self, reopen: asyncio.Event) -> AsyncGenerator[FeedChange[CorporateAction], None]:
        """As NoticeIssueFeed.follow, for every card."""
        ...
