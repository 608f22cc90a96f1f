"""MongoNoticeProjectionStore: what the notices projector writes.

`notices` holds one document per corporate action and account (the latest
issue of that depositor's notice); `notice_subscriptions` remembers which
corporate actions follow which (isin, record date), so a positions snapshot
finds the actions it affects. Writes are guarded by the notice version: a
stale or repeated write never replaces a newer notice.

Beside the notices of each action, in the same collection, two summary
documents count them (total, delivered, acknowledged; the counts are their
sums), so the portal reads three numbers instead of counting 100 000
notices: `stats|<action id>`, moved by the projector's writes, and
`stats|<action id>|marks`, moved by the delivery and acknowledgement marks.
Two documents, because a transaction that writes a document another one
committed to since it began fails with a write conflict and starts over: with
one, every delivery mark of a fan-out's first notices made the projector
redo its 5 000-notice chunk (300 notices/s instead of 2 000). Every write that
changes a count moves it in the same transaction, from what the transaction
itself read: the counts stay exact through redeliveries, concurrent workers
and crashes, and a rebuild's collection switch-over carries them along with
the notices.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from pymongo import ASCENDING, ReplaceOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document, in_chunks
from adapters.mongo.errors import translated
from adapters.mongo.event_store import COUNTERS, EVENTS, put_derived_events
from adapters.mongo.transactions import TransactionSessions
from domain.codes import NoticeKind
from domain.delivery import (
    ISSUED_PER_EVENT,
    IssuedNotice,
    issue_stream,
    notices_issued_event,
)
from domain.ports import NoticePlan, NoticeRecord, StoredIssue
from observability import metrics
from observability.trace_context import current_trace_context

NOTICES = "notices"
SUBSCRIPTIONS = "notice_subscriptions"
DELIVERED_VERSIONS = "delivered_versions"


class MongoNoticeProjectionStore:
    """The NoticeProjectionStore port on MongoDB (and what the dispatcher marks
    delivered)."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        notices: str = NOTICES,
        *,
        issue_events: bool = True,
        delivered_at_issue: bool = False,
        sessions: TransactionSessions | None = None,
    ) -> None:
        self._db = db
        # a SIGKILLed process's open chunk transaction is ended by its survivors
        self._sessions = sessions or TransactionSessions(db)
        self._notices = db[notices]
        self._subscriptions = db[SUBSCRIPTIONS]
        self._events = db[EVENTS]
        self._counters = db[COUNTERS]
        # Each issued version is also named in a `NoticeIssued` event in the
        # outbox (a batch per transaction), written with the notice: the
        # dispatcher's input.
        self._issue_events = issue_events
        # No outbound channel on (`delivery.wiring.delivered_at_issue`): each
        # version is stored delivered at its issue time, counted so in the
        # chunk's transaction, and its event says so — the dispatcher's
        # per-notice marks (a read and an update of each notice on the store
        # the fan-out writes to) are not needed.
        self._delivered_at_issue = delivered_at_issue
        # The last committed version of each action's issue stream seen here
        # (bounded; a hint, see `_issue_head`).
        self._issue_heads: OrderedDict[str, int] = OrderedDict()
        # (notice, version) pairs every chosen channel delivered: kept apart from
        # the notices so a rebuilt notice gets its `deliveredAt` back.
        self._delivered = db[DELIVERED_VERSIONS]

    async def ensure_indexes(self) -> None:
        async with translated():
            await self._notices.create_index(
                [("corporateActionId", ASCENDING), ("accountId", ASCENDING)]
            )
            await self._subscriptions.create_index([("isin", ASCENDING), ("asOf", ASCENDING)])

    async def subscribe(self, action_id: str, pairs: Iterable[tuple[str, date]]) -> None:
        operations = [
            UpdateOne(
                {"_id": f"{isin}|{as_of.isoformat()}|{action_id}"},
                {"$set": {"isin": isin, "asOf": as_of.isoformat(), "actionId": action_id}},
                upsert=True,
            )
            for isin, as_of in pairs
        ]
        if operations:
            async with translated():
                await self._subscriptions.bulk_write(operations, ordered=False)

    async def subscribers(self, isin: str, as_of: str) -> list[str]:
        async with translated():
            cursor = self._subscriptions.find({"isin": isin, "asOf": as_of}, {"actionId": 1})
            return [doc["actionId"] async for doc in cursor]

    async def reconcile_range(
        self,
        action_id: str,
        first: str,
        last: str,
        plan: NoticePlan,
    ) -> int:
        """In one transaction: read the stored notices of accounts first..last
        (inclusive) of this action, ask `plan` for the notices to store given
        those, write each that is absent or newer than the stored one, and
        move the action's counts by the difference. Returns how many were
        written. `plan` may run more than once (a conflicting concurrent
        write makes the transaction start over) and must be pure."""
        written: list[Document] = []
        issue_head: int | None = None

        async def attempt(session: AsyncClientSession) -> None:
            nonlocal written, issue_head
            cursor = self._notices.find(
                {"corporateActionId": action_id, "accountId": {"$gte": first, "$lte": last}},
                {"accountId": 1, "version": 1, "contentHash": 1, **_COUNTED},
                session=session,
            )
            stored = {doc["accountId"]: doc async for doc in cursor}
            new: list[Document] = []
            replacing: list[Document] = []
            moves = _Counts()
            issues = {account: _stored_issue(doc) for account, doc in stored.items()}
            planned = await self._with_delivery(
                [_document(record) for record in plan(issues)], session
            )
            for doc in planned:
                previous = stored.get(doc["accountId"])
                if previous is None:
                    new.append(doc)
                    moves.add(doc, 1)
                elif previous["version"] < doc["version"]:
                    replacing.append(doc)
                    moves.add(doc, 1)
                    moves.add(previous, -1)
            if new:
                await self._notices.insert_many(new, ordered=False, session=session)
            if replacing:
                await self._notices.bulk_write(
                    [_replace(d) for d in replacing],
                    ordered=False,
                    session=session,
                )
            await self._count(action_id, moves, session)
            issue_head = None
            if self._issue_events and (new or replacing):
                issue_head = await self._record_issues(action_id, [*new, *replacing], session)
            written = [*new, *replacing]  # (an attempt started over forgets its own)

        await self._in_transaction(attempt)
        if issue_head is not None:  # committed
            self._remember_issue_head(action_id, issue_head)
        for doc in written:
            metrics.NOTICES_ISSUED.labels(doc["kind"]).inc()
        return len(written)

    async def _record_issues(
        self, action_id: str, notices: Sequence[Document], session: AsyncClientSession
    ) -> int | None:
        """`NoticeIssued` for the written notice versions, in the caller's
        transaction: one event per `ISSUED_PER_EVENT` versions (a fan-out's
        outbox writes were one document per notice, each under the events'
        four indexes: two thirds of a chunk's transaction). An event's id
        comes from its (notice, version) pairs, so a rerun of the transaction
        writes nothing new; the new ones continue the action's issue stream
        from its head read here (a concurrent writer of the same stream makes
        one of the two transactions start over on the duplicate version).
        Global positions are reserved outside the transaction (gaps are
        harmless). (A rebuild whose batches differ from the live ones names
        some versions again: the planner plans each (notice, version,
        channel) once.) Returns the stream's new head, or None if nothing
        new was written."""
        ordered = sorted(notices, key=lambda doc: str(doc["_id"]))
        events = [
            notices_issued_event(
                action_id,
                [_issued(doc) for doc in batch],
                min(doc["issuedAt"] for doc in batch),
                0,  # the stream version is assigned below, to the new ones
                delivered_at_issue=self._delivered_at_issue,
            )
            for batch in (
                ordered[start : start + ISSUED_PER_EVENT]
                for start in range(0, len(ordered), ISSUED_PER_EVENT)
            )
        ]
        stored = await _by_id(self._events, [e.event_id for e in events], {"_id": 1}, session)
        known = {doc["_id"] for doc in stored}
        new = [e for e in events if e.event_id not in known]
        if not new:
            return None
        head = await self._issue_head(action_id, session)
        reserved = await self._counters.find_one_and_update(
            {"_id": EVENTS},
            {"$inc": {"value": len(new)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert reserved is not None
        first = int(reserved["value"]) - len(new) + 1
        # the trace of the work that wrote the notices goes on to the dispatcher
        trace_context = current_trace_context()
        await put_derived_events(
            self._events,
            [
                replace(
                    event,
                    version=head + 1 + offset,
                    sequence=first + offset,
                    trace_context=trace_context,
                )
                for offset, event in enumerate(new)
            ],
            session,
        )
        return head + len(new)

    async def _issue_head(self, action_id: str, session: AsyncClientSession) -> int:
        """The last version of the action's issue stream: read from the last
        head this store committed (an index range of the newer ones, usually
        one document), else from version 1. (Reading the whole stream each
        time read every earlier batch of the fan-out — ~250 KB each — in every
        chunk's transaction: quadratic in the holders, 4 000 batches a chunk
        at 1 000 000.) Events are never deleted, so a head once committed is
        found again; if not, the whole stream is read."""
        stream = issue_stream(action_id)
        for since in dict.fromkeys((max(self._issue_heads.get(action_id, 1), 1), 1)):
            heads = self._events.find(
                {"aggregateId": stream, "version": {"$gte": since}},
                {"version": 1},
                session=session,
            )
            found = [int(doc["version"]) async for doc in heads]
            if found:
                return max(found)
        return 0

    def _remember_issue_head(self, action_id: str, head: int) -> None:
        heads = self._issue_heads
        heads[action_id] = max(head, heads.get(action_id, 0))
        heads.move_to_end(action_id)
        while len(heads) > _ISSUE_HEADS_KEPT:
            heads.popitem(last=False)

    async def _with_delivery(
        self, notices: Sequence[Document], session: AsyncClientSession
    ) -> list[Document]:
        """The notices, each with `deliveredAt` as recorded for its version
        (else its `issuedAt` when delivered at issue, else none)."""
        if not notices:
            return []
        keys = [_delivered_key(n["_id"], n["version"]) for n in notices]
        found = await _by_id(self._delivered, keys, {"at": 1}, session)
        delivered = {d["_id"]: d["at"] for d in found}
        at_issue = self._delivered_at_issue
        return [
            {
                **n,
                "deliveredAt": delivered.get(
                    _delivered_key(n["_id"], n["version"]), n["issuedAt"] if at_issue else None
                ),
            }
            for n in notices
        ]

    async def mark_delivered(self, versions: Sequence[tuple[str, int]], at: datetime) -> int:
        """Every chosen channel delivered these (notice, version)s (or they had
        none): record them, and set each notice's `deliveredAt` and count it
        while it is still at that version — one transaction for the lot.
        Returns how many notices were marked."""
        if not versions:
            return 0
        marked = 0

        async def attempt(session: AsyncClientSession) -> None:
            nonlocal marked
            # Read which are recorded, insert the rest (the `_id`s alone: key
            # operations on SecantusDB, where an upsert each cost it more).
            keys = {_delivered_key(n, v) for n, v in versions}
            recorded = await _by_id(self._delivered, list(keys), {"_id": 1}, session)
            known = {doc["_id"] for doc in recorded}
            if keys - known:
                await self._delivered.insert_many(
                    [{"_id": key, "at": at} for key in sorted(keys - known)],
                    ordered=False,
                    session=session,
                )
            wanted = dict(versions)
            # Filters on `_id` alone, the guards checked here: SecantusDB serves
            # `_id` alone as a key lookup but scans the collection for `_id` plus
            # any other field. The transaction keeps what it read: a notice
            # changed since by another writer makes the update below conflict
            # and the transaction start over.
            found = await _by_id(
                self._notices,
                list(wanted),
                {"version": 1, "corporateActionId": 1, "deliveredAt": 1},
                session,
            )
            due = [
                doc
                for doc in found
                if doc["version"] == wanted[doc["_id"]] and doc.get("deliveredAt") is None
            ]
            # one update per slice of ids (a guarded pipeline update per notice
            # cost the store ~1 ms each, holding up the fan-out's writes)
            for ids in in_chunks([d["_id"] for d in due]):
                await self._notices.update_many(
                    {"_id": {"$in": ids}}, {"$set": {"deliveredAt": at}}, session=session
                )
            per_action: dict[str, int] = {}
            for doc in due:
                action = doc["corporateActionId"]
                per_action[action] = per_action.get(action, 0) + 1
            for action, count in per_action.items():
                await self._count(action, _Counts(delivered=count), session, marks=True)
            marked = len(due)

        await self._in_transaction(attempt)
        return marked

    async def acknowledge(self, notice_id: str, version: int, at: datetime) -> bool:
        """Mark `version` of the notice acknowledged at `at`.

        Guarded: only while the stored notice is still at `version` (an
        acknowledgement of a superseded version means nothing for the new one)
        and not yet acknowledged (a redelivery keeps the first time).
        """
        acknowledged = False

        async def attempt(session: AsyncClientSession) -> None:
            nonlocal acknowledged
            # update_one then a read by `_id`, not find_one_and_update:
            # SecantusDB serves the guarded `_id` filter from the `_id` index
            # in an update but scans every notice for a findAndModify.
            marked = await self._notices.update_one(
                {"_id": notice_id, "version": version, "acknowledgedAt": None},
                {"$set": {"acknowledgedAt": at}},
                session=session,
            )
            acknowledged = marked.matched_count == 1
            if acknowledged:
                notice = await self._notices.find_one(
                    {"_id": notice_id}, {"corporateActionId": 1}, session=session
                )
                assert notice is not None  # just updated, in this transaction
                await self._count(
                    notice["corporateActionId"], _Counts(acknowledged=1), session, marks=True
                )

        await self._in_transaction(attempt)
        return acknowledged

    async def _count(
        self, action_id: str, moves: _Counts, session: AsyncClientSession, *, marks: bool = False
    ) -> None:
        """Move the action's counts: the projector's document, or (`marks`) the
        one the delivery and acknowledgement marks move."""
        if moves:
            await self._notices.update_one(
                {"_id": marks_id(action_id) if marks else stats_id(action_id)},
                {"$inc": moves.as_update(), "$set": {STATS_OF: action_id}},
                upsert=True,
                session=session,
            )

    async def _in_transaction(
        self, attempt: Callable[[AsyncClientSession], Awaitable[None]]
    ) -> None:
        """Run `attempt` in a transaction; PyMongo retries transient conflicts,
        and a duplicate key (a concurrent run inserted the same notice first)
        starts it over too: the next read sees that notice."""
        await self._sessions.run(attempt, duplicate_retries=_DUPLICATE_RETRIES)


STATS_OF = "statsOf"
_COUNTED = {"acknowledgedAt": 1, "deliveredAt": 1}
_DUPLICATE_RETRIES = 5
_ISSUE_HEADS_KEPT = 1024  # actions whose issue-stream head is remembered


async def _by_id(
    collection: AsyncCollection[Document],
    ids: Sequence[str],
    projection: Document,
    session: AsyncClientSession,
) -> list[Document]:
    """The documents of `ids` that exist, read IN_LIMIT ids at a time
    (SecantusDB matches an `$in` of n ids that it finds in ~n²/2 comparisons:
    a chunk's 5 000 delivered versions in one `$in` took 30 s)."""
    found: list[Document] = []
    for some in in_chunks(ids):
        cursor = collection.find({"_id": {"$in": some}}, projection, session=session)
        found.extend([doc async for doc in cursor])
    return found


def _stored_issue(doc: Document) -> StoredIssue:
    return StoredIssue(int(doc["version"]), str(doc.get("contentHash")), doc.get("acknowledgedAt"))


def _document(record: NoticeRecord) -> Document:
    """The stored notice (`deliveredAt` is filled in from the delivered versions)."""
    notice = record.notice
    return {
        "_id": record.notice_id,
        "corporateActionId": record.corporate_action_id,
        "accountId": notice.account_id,
        "version": notice.version,
        "kind": notice.kind.value,
        "changedFields": list(notice.changed_fields),
        "caVersion": notice.ca_version,
        "content": dict(notice.content),
        "contentHash": notice.content_hash,
        "issuedAt": notice.issued_at,
        "acknowledgedAt": record.acknowledged_at,
        "deliveredAt": None,
    }


def _replace(notice: Document) -> ReplaceOne[Document]:
    # the transaction read an older version: this guard only repeats it
    return ReplaceOne({"_id": notice["_id"], "version": {"$lt": notice["version"]}}, notice)


def _issued(doc: Document) -> IssuedNotice:
    issued_at: datetime = doc["issuedAt"]
    return IssuedNotice(
        notice_id=str(doc["_id"]),
        version=int(doc["version"]),
        kind=NoticeKind(doc["kind"]),
        account_id=str(doc["accountId"]),
        corporate_action_id=str(doc["corporateActionId"]),
        ca_version=int(doc.get("caVersion") or 0),
        issued_at=issued_at if issued_at.tzinfo else issued_at.replace(tzinfo=UTC),
        content=doc.get("content") or {},
        changed_fields=tuple(doc.get("changedFields") or ()),
    )


def _delivered_key(notice_id: str, version: int) -> str:
    return f"{notice_id}|{version}"


def stats_id(action_id: str) -> str:
    """The `_id` of an action's summary document in the notices collection
    (the projector's; its counts add to those of `marks_id`)."""
    return f"stats|{action_id}"


def marks_id(action_id: str) -> str:
    """The `_id` of the summary document the delivery and acknowledgement
    marks move (see the module's docstring)."""
    return f"stats|{action_id}|marks"


@dataclass
class _Counts:
    total: int = 0
    delivered: int = 0
    acknowledged: int = 0

    def add(self, notice: Document, sign: int) -> None:
        self.total += sign
        self.delivered += sign * (notice.get("deliveredAt") is not None)
        self.acknowledged += sign * (notice.get("acknowledgedAt") is not None)

    def __bool__(self) -> bool:
        return any((self.total, self.delivered, self.acknowledged))

    def as_update(self) -> dict[str, int]:
        return {"total": self.total, "delivered": self.delivered, "acknowledged": self.acknowledged}
