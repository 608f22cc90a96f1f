"""MongoEventStore: Herald's durable record of events, and the outbox.

Each event is one document in `events`; a unique index on (aggregateId,
version) makes two writers of the same aggregate version conflict. A
command's unique reservations (e.g. the official reference) ride on its first
event as `reserves`, under a unique index, so the event and its reservation
are one atomic insert — no transaction for the common single-event command.
Concurrent appends are group-committed (adapters/mongo/group_commit.py): one
sequence allocation for all of them, and one unordered insert for the
single-event ones, each append hearing its own outcome. Several events go in one
transaction. All of it is stored before the caller
hears "accepted". The relay drains `published: false` in sequence order.

Sequence blocks (issue 16, "the command path"): an allocation also reserves a
block of sequences this process hands out to later appends without a round
trip, so a command's only durable write is its event. Two rules keep what
the sequence promises:
- Per aggregate, sequences rise with versions (the relay publishes in
  sequence order; projectors need each stream in version order). Another
  process may have stored this aggregate's head above our block, so an
  append names the sequence of the head it follows (`follows`, known from the
  stream the handler loaded) and takes a local sequence only above it;
  otherwise it allocates from the counter, whose new values are above every
  sequence allocated so far. An append that does not say (`follows=None`)
  always allocates from the counter.
- A block is used only for `block_seconds` (BLOCK_SECONDS) after it was
  reserved; its unused rest is dropped, a gap. The applied-through
  checkpoint passes a gap once the counter stood past it for its horizon
  (projections/checkpoint.py, 60 s), so a block's lifetime must stay well
  below that horizon (services.py bounds it).
A block's size follows demand: twice what the previous block handed out,
within BLOCK_MIN..BLOCK_MAX, so an idle process drops at most BLOCK_MIN - 1
sequences per command and the record's sequences stay dense enough for the
sequence-window reads below.

An append is idempotent by event id: a duplicate key whose event ids are
already stored means "already written" (a retry of our own insert — PyMongo's
retryable writes resend an insert whose answer was lost to a socket timeout,
and a resumed command re-appends under the same ids) and returns what was
stored; only a duplicate of someone else's (aggregateId, version) is a
version conflict. Events recorded by a request carry its `command`
(Idempotency-Key, fingerprint, command id), stored here and never published.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document, in_chunks
from adapters.mongo.errors import translated
from adapters.mongo.group_commit import GroupCommit, insert_unordered
from adapters.mongo.transactions import TransactionSessions
from domain.events import CommandOrigin, EventEnvelope
from domain.ports import ConcurrencyError, DuplicateKey, StoreError, UniqueKeyTaken
from observability.trace_context import trace_context_of

EVENTS = "events"
RESERVES = "reserves"
COUNTERS = "counters"
COMMAND = "command"
# The event's metadata: the W3C trace context of the work that recorded it.
METADATA = "metadata"
# Attempts at the global sequence counter: a first allocation on a new store
# can lose an upsert race (DuplicateKey, or no document back).
ALLOCATION_ATTEMPTS = 5
# Sequences re-queued per update when the log is re-filled.
REQUEUE_SLICE = 2_000
# Sequences read per query when walking the record's heads.
HEADS_WINDOW = 2_000
# The outbox poll's window past its front, and the step of its walk above an
# empty window (sequences; see MongoEventStore.unpublished).
OUTBOX_WINDOW = 1_000
OUTBOX_WALK = 20_000
# Sequence blocks (see the module docstring): how long a reserved block is
# handed out (seconds; well below the checkpoint's 60 s horizon) and its size
# bounds (sequences).
BLOCK_SECONDS = 2.0
BLOCK_MIN = 16
BLOCK_MAX = 512


def _to_document(event: EventEnvelope) -> Document:
    document: Document = {
        "_id": event.event_id,
        "eventType": event.event_name,
        "aggregateType": event.aggregate_type,
        "aggregateId": event.aggregate_id,
        "version": event.version,
        "occurredAt": event.occurred_at,
        "actor": event.actor,
        "correlationId": event.correlation_id,
        "schemaVersion": event.schema_version,
        "sequence": event.sequence,
        "payload": dict(event.payload),
        "published": False,
    }
    if event.origin is not None:
        document[COMMAND] = {
            "id": event.origin.command_id,
            "key": event.origin.key,
            "fingerprint": event.origin.fingerprint,
        }
    if event.trace_context:
        document[METADATA] = dict(event.trace_context)
    return document


def _from_document(doc: Document) -> EventEnvelope:
    occurred_at = doc["occurredAt"]
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    return EventEnvelope(
        event_id=doc["_id"],
        event_name=doc["eventType"],
        aggregate_type=doc["aggregateType"],
        aggregate_id=doc["aggregateId"],
        version=doc["version"],
        occurred_at=occurred_at,
        actor=doc["actor"],
        correlation_id=doc["correlationId"],
        schema_version=doc["schemaVersion"],
        sequence=doc["sequence"],
        payload=doc["payload"],
        origin=_origin(doc.get(COMMAND)),
        # events stored before traces were kept have no metadata
        trace_context=trace_context_of(doc.get(METADATA)),
    )


def _origin(stored: Any) -> CommandOrigin | None:
    if not isinstance(stored, dict):
        return None
    return CommandOrigin(str(stored["id"]), str(stored["key"]), str(stored["fingerprint"]))


@dataclass
class _Block:
    """Sequences first..end reserved at `reserved_at` (the clock before the
    allocation was sent); `next` is the first not yet handed out."""

    first: int
    end: int
    reserved_at: float
    next: int = 0

    def __post_init__(self) -> None:
        self.next = self.first

    def take(self, count: int, follows: int | None, now: float, lifetime: float) -> int | None:
        """The first of `count` consecutive sequences above `follows`, or None
        (`follows` unknown or not below the block, too few left, expired)."""
        if (
            follows is None
            or self.next <= follows
            or self.next + count - 1 > self.end
            or now - self.reserved_at >= lifetime
        ):
            return None
        first, self.next = self.next, self.next + count
        return first

    @property
    def handed_out(self) -> int:
        return self.next - self.first


# A sequence request: how many, and the sequence of the stream head they follow.
_Request = tuple[int, int | None]


class MongoEventStore:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        sessions: TransactionSessions | None = None,
        *,
        block_seconds: float = BLOCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`block_seconds`: how long a reserved block of sequences is handed
        out (0: never; every append allocates from the counter); `clock`:
        monotonic seconds."""
        self._db = db
        # a SIGKILLed process's open multi-event append is ended by its survivors
        self._sessions = sessions or TransactionSessions(db)
        self._events = db[EVENTS]
        self._counters = db[COUNTERS]
        # Group commit (adapters/mongo/group_commit.py): sequence allocations
        # and single-event inserts batched apart, so one batch's allocation
        # overlaps the previous batch's insert.
        self._sequences: GroupCommit[_Request, int] = GroupCommit(self._allocate_blocks)
        self._block_seconds = block_seconds
        self._clock = clock
        self._block: _Block | None = None
        self._single_inserts = GroupCommit(self._insert_singles)
        # Where the outbox starts, as last seen (a hint; None: not looked yet).
        self._outbox_front: int | None = None

    async def ensure_indexes(self) -> None:
        async with translated():
            await self._events.create_index(
                [("aggregateId", ASCENDING), ("version", ASCENDING)], unique=True
            )
            await self._events.create_index([("sequence", ASCENDING)])
            await self._events.create_index([("published", ASCENDING), ("sequence", ASCENDING)])
            await self._events.create_index(
                RESERVES, unique=True, partialFilterExpression={RESERVES: {"$exists": True}}
            )
        await self.ensure_counter()

    async def ensure_counter(self) -> None:
        """Create the global sequence counter once, so that concurrent first
        appends only ever increment it (never race to create it)."""
        # (DuplicateKey: another process created it first)
        with suppress(DuplicateKey):
            async with translated():
                await self._counters.update_one(
                    {"_id": EVENTS}, {"$setOnInsert": {"value": 0}}, upsert=True
                )

    async def _allocate_sequences(self, count: int) -> int:
        """Reserve `count` global positions; returns the first. Gaps are harmless
        (an increment retried by the driver leaves one); duplicates never happen:
        `$inc` is atomic on one document."""
        for _ in range(ALLOCATION_ATTEMPTS):
            try:
                async with translated():
                    doc = await self._counters.find_one_and_update(
                        {"_id": EVENTS},
                        {"$inc": {"value": count}},
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
            except DuplicateKey:
                continue  # two first upserts raced: the counter exists now
            if doc is not None:
                return int(doc["value"]) - count + 1
        raise StoreError("the global event sequence could not be allocated; retry")

    async def append(
        self,
        events: Sequence[EventEnvelope],
        reservations: Sequence[tuple[str, str]] = (),
        *,
        follows: int | None = None,
    ) -> list[EventEnvelope]:
        if not events:
            return []
        first = self._take(len(events), follows)
        if first is None:
            first = await self._sequences.submit((len(events), follows))
        stored = [_with_sequence(event, first + offset) for offset, event in enumerate(events)]
        documents = [_to_document(event) for event in stored]
        if reservations:
            documents[0][RESERVES] = [_reservation(ns, key) for ns, key in reservations]
        try:
            if len(documents) == 1:  # atomic by itself: group-committed with its peers
                await self._single_inserts.submit(documents[0])
            else:
                await self._insert_in_transaction(documents)
        except DuplicateKey as exc:
            async with translated():
                written = await self._already_written(events)
            if written is not None:
                return written
            raise _duplicate_error(exc, reservations) from exc
        return stored

    def _take(self, count: int, follows: int | None) -> int | None:
        """`count` sequences from this process's block, or None (see _Block.take)."""
        if self._block is None:
            return None
        return self._block.take(count, follows, self._clock(), self._block_seconds)

    async def _allocate_blocks(self, requests: Sequence[_Request]) -> Sequence[int | Exception]:
        """The first of each request's consecutive global positions, in order:
        from the block when it serves (a block reserved while these requests
        queued), the rest from one allocation, which also reserves the next
        block when a request named the head it follows."""
        starts = [self._take(count, follows) for count, follows in requests]
        missing = [n for n, start in enumerate(starts) if start is None]
        if not missing:
            return [start for start in starts if start is not None]
        wanted = sum(requests[n][0] for n in missing)
        block = 0
        if self._block_seconds > 0 and any(requests[n][1] is not None for n in missing):
            handed_out = 0 if self._block is None else self._block.handed_out
            block = min(BLOCK_MAX, max(BLOCK_MIN, 2 * handed_out))
        reserved_at = self._clock()  # before the counter moves: the block's age is an upper bound
        first = await self._allocate_sequences(wanted + block)
        for n in missing:  # above every sequence allocated before: above any head followed
            starts[n] = first
            first += requests[n][0]
        if block:
            self._block = _Block(first, first + block - 1, reserved_at)
        return [start for start in starts if start is not None]

    async def _insert_singles(self, documents: Sequence[Document]) -> list[Exception | None]:
        """The events of concurrent single-event appends in one unordered
        insert; each one's duplicate key is its own."""
        return await insert_unordered(self._events, documents)

    async def _insert_in_transaction(self, documents: Sequence[Document]) -> None:
        async def write(session: AsyncClientSession) -> None:
            await self._events.insert_many(documents, ordered=True, session=session)

        await self._sessions.run(write)

    async def _already_written(self, events: Sequence[EventEnvelope]) -> list[EventEnvelope] | None:
        """The stored events when every one of `events` is stored under its id
        (this append was already done), else None."""
        ids = [event.event_id for event in events]
        found = {
            doc["_id"]: doc
            for chunk in in_chunks(ids)
            async for doc in self._events.find({"_id": {"$in": chunk}})
        }
        if len(found) != len(ids):
            return None
        return [_from_document(found[event_id]) for event_id in ids]

    async def get(self, event_id: str) -> EventEnvelope | None:
        """The event stored under `event_id`, or None."""
        async with translated():
            doc = await self._events.find_one({"_id": event_id})
        return None if doc is None else _from_document(doc)

    async def load(self, aggregate_id: str, after_version: int = 0) -> list[EventEnvelope]:
        # Sorted here: SecantusDB would sort the index range in memory anyway
        # (the index leads with aggregateId, not the sort's version).
        async with translated():
            cursor = self._events.find(
                {"aggregateId": aggregate_id, "version": {"$gt": after_version}}
            )
            found = [_from_document(doc) async for doc in cursor]
        return sorted(found, key=lambda event: event.version)

    async def stream_heads(
        self, aggregate_ids: Collection[str], before_sequence: int
    ) -> dict[str, int]:
        """Served by the (aggregateId, version) index: the streams asked about
        are few and short (an account's preferences), so their events are read
        and the sequence bound applied here."""
        heads: dict[str, int] = {}
        if not aggregate_ids:
            return heads
        async with translated():
            for chunk in in_chunks(sorted(aggregate_ids)):
                cursor = self._events.find(
                    {"aggregateId": {"$in": chunk}},
                    {"aggregateId": 1, "version": 1, "sequence": 1},
                )
                async for doc in cursor:
                    if int(doc["sequence"]) < before_sequence:
                        stream = doc["aggregateId"]
                        heads[stream] = max(heads.get(stream, 0), int(doc["version"]))
        return heads

    async def unpublished(self, limit: int) -> list[EventEnvelope]:
        """The outbox's first `limit` events in sequence order.

        Read through a bounded window so a poll costs what is near the front
        of the outbox, not the whole backlog: SecantusDB reads every document
        a filter matches whatever the limit, and sorts them in memory (the
        (published, sequence) index does not lead with the sort's field). The
        window is `sequence <= front + OUTBOX_WINDOW` with no lower bound, so
        every unpublished event below it is always seen (a late insert of a
        lower sequence, an unparked event); `front` is only a hint of where
        the outbox starts (the lowest sequence found last time). Nothing in
        the window: the windows above it are walked up to the counter, each
        an index range holding only unpublished keys; the first one holding
        events is read again with no lower bound, so an event stored below it
        meanwhile (e.g. from another process's sequence block) is not passed
        over: it may be its aggregate's version before the one found."""
        async with translated():
            front, top = self._outbox_front, None
            if front is None:  # the first poll: the whole outbox, once
                found = await self._outbox({"published": False})
            else:
                low = front + OUTBOX_WINDOW
                found = await self._outbox({"published": False, "sequence": {"$lte": low}})
                top = None if found else await self.last_sequence()
                while top is not None and not found and low < top:
                    found = await self._outbox(
                        {"published": False, "sequence": {"$gt": low, "$lte": low + OUTBOX_WALK}}
                    )
                    low += OUTBOX_WALK
                if top is not None and found:
                    found = await self._outbox({"published": False, "sequence": {"$lte": low}})
            if found:
                self._outbox_front = found[0].sequence
            else:  # empty up to the counter: the next appends come just above it
                self._outbox_front = top if top is not None else await self.last_sequence()
        return found[:limit]

    async def _outbox(self, query: Document) -> list[EventEnvelope]:
        """The unpublished events `query` matches, in sequence order."""
        found = [_from_document(doc) async for doc in self._events.find(query)]
        return sorted(found, key=lambda event: event.sequence)

    async def mark_published(self, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        async with translated():
            for chunk in in_chunks(event_ids):
                await self._events.update_many(
                    {"_id": {"$in": chunk}}, {"$set": {"published": True}}
                )

    # Parking keeps a refused event out of the outbox (`published` is neither
    # False, which the relay drains, nor True, which a re-publish resets).

    async def park(self, event_ids: Sequence[str], at: datetime) -> None:
        if not event_ids:
            return
        async with translated():
            for chunk in in_chunks(event_ids):
                await self._events.update_many(
                    {"_id": {"$in": chunk}, "published": False},
                    {"$set": {"published": None, "parkedAt": at}},
                )

    async def unpark(self, event_ids: Sequence[str]) -> int:
        unparked = 0
        async with translated():
            for chunk in in_chunks(event_ids):
                result = await self._events.update_many(
                    {"_id": {"$in": chunk}, "published": None},
                    {"$set": {"published": False}, "$unset": {"parkedAt": ""}},
                )
                unparked += result.modified_count
        return unparked

    async def mark_unpublished_after(self, sequence: int) -> int:
        """Queue the events past global `sequence` for publishing again (the
        log was lost; every event up to `sequence` is in every read model).
        In slices of REQUEUE_SLICE sequences: one update of the whole record
        can outlast the socket timeout (an update of many documents is not
        retried by the driver), and a repeated slice changes nothing."""
        top = await self.last_sequence()
        queued = 0
        # the outbox starts there now (a front above it would read it all at once)
        self._outbox_front = min(self._outbox_front or sequence, sequence)
        async with translated():
            for low in range(sequence, top, REQUEUE_SLICE):
                result = await self._events.update_many(
                    {"published": True, "sequence": {"$gt": low, "$lte": low + REQUEUE_SLICE}},
                    {"$set": {"published": False}},
                )
                queued += result.modified_count
        return queued

    async def last_sequence(self) -> int:
        """The highest global sequence allocated so far (0 on an empty record);
        an append holding a lower one may still be in flight."""
        async with translated():
            doc = await self._counters.find_one({"_id": EVENTS})
        return 0 if doc is None else int(doc["value"])

    async def heads(
        self, after_sequence: int, through_sequence: int, limit: int
    ) -> list[EventHead]:
        """Where each stored event past `after_sequence` (up to
        `through_sequence`) stands, in sequence order, at most `limit`.

        Read in windows of HEADS_WINDOW sequences, by the sequence range alone
        (the `sequence` index) and sorted here: a sort or a second condition
        beside the range makes SecantusDB scan the whole record, and one range
        read fetches every event in it whatever the limit."""
        found: list[EventHead] = []
        low = after_sequence
        async with translated():
            while low < through_sequence and len(found) < limit:
                high = min(through_sequence, low + HEADS_WINDOW)
                cursor = self._events.find(
                    {"sequence": {"$gt": low, "$lte": high}},
                    {"sequence": 1, "aggregateType": 1, "aggregateId": 1, "version": 1},
                )
                window = sorted(
                    [
                        EventHead(
                            int(doc["sequence"]),
                            doc["aggregateType"],
                            doc["aggregateId"],
                            int(doc["version"]),
                        )
                        async for doc in cursor
                    ],
                    key=lambda head: head.sequence,
                )
                found.extend(window)
                low = high
        return found[:limit]

    async def unpublished_through(self, sequence: int) -> int:
        """How many events up to global `sequence` the relay has still to publish."""
        async with translated():
            return await self._events.count_documents(
                {"published": False, "sequence": {"$lte": sequence}}
            )

    async def read_all(self, after_sequence: int, limit: int) -> list[EventEnvelope]:
        """In windows of HEADS_WINDOW sequences (see `heads`): one sorted read
        past `after_sequence` would fetch the rest of the record."""
        top = await self.last_sequence()
        found: list[EventEnvelope] = []
        low = after_sequence
        async with translated():
            while low < top and len(found) < limit:
                high = low + HEADS_WINDOW
                cursor = self._events.find({"sequence": {"$gt": low, "$lte": high}})
                window = [_from_document(doc) async for doc in cursor]
                found.extend(sorted(window, key=lambda event: event.sequence))
                low = high
        return found[:limit]

    async def unpublished_count(self) -> int:
        async with translated():
            return await self._events.count_documents({"published": False})


@dataclass(frozen=True)
class EventHead:
    """An event's place: its global sequence, its stream and its version there."""

    sequence: int
    aggregate_type: str
    aggregate_id: str
    version: int


async def put_derived_events(
    events_collection: AsyncCollection[Document],
    events: Sequence[EventEnvelope],
    session: AsyncClientSession,
) -> None:
    """Put derived events (whose ids are a function of what they derive from,
    e.g. `NoticeIssued`) in the outbox, in the caller's transaction; one
    already there stays as it is. Reads which are there by `_id` and inserts
    the rest: SecantusDB serves both as key operations, where an upsert per
    event cost it several times more."""
    if not events:
        return
    stored = {
        doc["_id"]
        for chunk in in_chunks([e.event_id for e in events])
        async for doc in events_collection.find(
            {"_id": {"$in": chunk}}, {"_id": 1}, session=session
        )
    }
    new = [_to_document(e) for e in events if e.event_id not in stored]
    if new:
        await events_collection.insert_many(new, ordered=False, session=session)


def _with_sequence(event: EventEnvelope, sequence: int) -> EventEnvelope:
    return replace(event, sequence=sequence)


def _duplicate_error(exc: DuplicateKey, reservations: Sequence[tuple[str, str]]) -> Exception:
    taken = exc.key.get(RESERVES)
    for namespace, key in reservations:
        if taken == _reservation(namespace, key):
            return UniqueKeyTaken(namespace, key)
    return ConcurrencyError(str(exc))


def _reservation(namespace: str, key: str) -> str:
    return f"{namespace}:{key}"
