"""MongoCardStore: the `cards` read model — one document per corporate action.

The document holds the folded aggregate state (every version with its author,
the history) plus flat fields to filter and sort on: the public view's fields
(last published version) and the operator view's (published, else pending).
Writes are guarded by the stored revision, so a stale or duplicate apply
changes nothing. An existing card is updated with `$set` rather than replaced,
so a change stream sees which fields changed: `publication_match` picks the
changes of the public view (a version published) at the store. A batch of
changes (`save_many`) costs two commits whatever its size: the new cards in
one unordered insert, the updates in one transaction (SecantusDB commits each
update of a bulk write on its own; a transaction a killed process leaves open
is ended by adapters/mongo/transactions.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.changes import INSERT, UPDATE, Change, MongoChangeFeed, as_feed
from adapters.mongo.client import Document, in_chunks
from adapters.mongo.errors import translated
from adapters.mongo.group_commit import insert_unordered
from adapters.mongo.transactions import TransactionSessions
from domain.corporate_action import ActionVersion, CorporateAction, HistoryEntry
from domain.history import decode_terms
from domain.ports import CardQuery, DuplicateKey, FeedChange
from domain.terms_payload import terms_to_payload

CARDS = "cards"


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _version_to_doc(v: ActionVersion) -> Document:
    return {
        "number": v.number,
        "kind": v.kind,
        "terms": terms_to_payload(v.terms),
        "author": v.author,
        "createdAt": v.created_at,
        "reason": v.reason,
        "approvedBy": v.approved_by,
        "approvedAt": v.approved_at,
    }


def _version_from_doc(d: Document) -> ActionVersion:
    created_at = _utc(d["createdAt"])
    assert created_at is not None
    return ActionVersion(
        number=d["number"],
        kind=d["kind"],
        terms=decode_terms(d["terms"]),
        author=d["author"],
        created_at=created_at,
        reason=d.get("reason"),
        approved_by=d.get("approvedBy"),
        approved_at=_utc(d.get("approvedAt")),
    )


def to_document(state: CorporateAction) -> Document:
    published = state.published
    view = published or state.versions[-1]
    terms = view.terms
    return {
        "_id": state.id,
        "revision": state.revision,
        "versions": [_version_to_doc(v) for v in state.versions],
        "history": [
            {
                "version": h.version,
                "eventType": h.event_name,
                "occurredAt": h.occurred_at,
                "actor": h.actor,
            }
            for h in state.history
        ],
        "publishedVersion": state.published_version,
        "pendingVersion": state.pending_version,
        "publishedAt": state.published_at,
        # flat fields for filtering: the view a reader of this card sees
        "isPublic": published is not None,
        "status": state.status.value,
        "isin": terms.isin,
        "eventType": terms.event_type.value,
        "recordDate": terms.record_date.isoformat(),
        "reference": terms.reference,
    }


def from_document(doc: Document) -> CorporateAction:
    return CorporateAction(
        id=doc["_id"],
        revision=doc["revision"],
        versions=tuple(_version_from_doc(v) for v in doc["versions"]),
        history=tuple(
            HistoryEntry(
                h["version"], h["eventType"], _utc(h["occurredAt"]) or h["occurredAt"], h["actor"]
            )
            for h in doc["history"]
        ),
        published_version=doc.get("publishedVersion"),
        pending_version=doc.get("pendingVersion"),
        published_at=_utc(doc.get("publishedAt")),
    )


def publication_match() -> Document:
    """Change-stream match: the public view of a card changed — a card stored
    already published, or a new version published (`publishedVersion` set)."""
    return {
        "$or": [
            {"operationType": {"$in": [INSERT, "replace"]}, "fullDocument.isPublic": True},
            {
                "operationType": UPDATE,
                "updateDescription.updatedFields.publishedVersion": {"$exists": True},
            },
        ]
    }


def is_publication(change: Change) -> bool:
    """Whether a change `publication_match` selected published a version (a
    replace by another writer changes the public view, but may not publish)."""
    document = change.document
    if document is None or not document.get("isPublic"):
        return False
    return change.operation == INSERT or (
        change.operation == UPDATE and "publishedVersion" in change.updated_fields
    )


def _published_card(change: Change) -> CorporateAction | None:
    """The card a change published, else None (another change of the public view)."""
    if change.document is None or not is_publication(change):
        return None
    return from_document(change.document)


class MongoCardPublicationFeed:
    """The CardPublicationFeed port: a change stream on the cards matching
    `publication_match`."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = CARDS) -> None:
        self._changes = MongoChangeFeed(db, collection)

    @property
    def name(self) -> str:
        return self._changes.name

    def follow(self, reopen: asyncio.Event) -> AsyncGenerator[FeedChange[CorporateAction], None]:
        return as_feed(self._changes.follow(publication_match, reopen), _published_card)


def _mongo_filter(query: CardQuery) -> dict[str, Any]:
    conditions: dict[str, Any] = {}
    if query.public_only:
        conditions["isPublic"] = True
    if query.isin:
        conditions["isin"] = query.isin
    if query.event_types:
        conditions["eventType"] = {"$in": list(query.event_types)}
    if query.statuses:
        conditions["status"] = {"$in": list(query.statuses)}
    date_range: dict[str, str] = {}
    if query.record_date_from:
        date_range["$gte"] = query.record_date_from
    if query.record_date_to:
        date_range["$lte"] = query.record_date_to
    if date_range:
        conditions["recordDate"] = date_range
    if query.ids:
        conditions["_id"] = {"$in": list(query.ids)}
    return conditions


def _update(state: CorporateAction, previous_revision: int) -> tuple[Document, Document]:
    """The guarded update of a stored card: (filter, update). Every field is
    set (to_document writes them all): the same as a replace, but the change
    event names only the fields that changed."""
    fields = {name: value for name, value in to_document(state).items() if name != "_id"}
    return {"_id": state.id, "revision": previous_revision}, {"$set": fields}


class _RevisionMoved(Exception):
    """A guarded update of a batch matched no card (its revision moved on)."""


class MongoCardStore:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        collection: str = CARDS,
        *,
        sessions: TransactionSessions | None = None,
    ) -> None:
        """`sessions`: where a batch's updates get their one transaction;
        without, they are written one at a time."""
        self._cards = db[collection]
        self._sessions = sessions

    async def ensure_indexes(self) -> None:
        async with translated():
            for keys in (
                [("isPublic", ASCENDING), ("_id", DESCENDING)],
                [("status", ASCENDING), ("_id", DESCENDING)],
                [("isin", ASCENDING), ("_id", DESCENDING)],
                [("recordDate", ASCENDING)],
            ):
                await self._cards.create_index(keys)

    async def get(self, action_id: str) -> CorporateAction | None:
        async with translated():
            doc = await self._cards.find_one({"_id": action_id})
        return None if doc is None else from_document(doc)

    async def get_many(self, ids: Sequence[str]) -> dict[str, CorporateAction]:
        async with translated():
            docs = [
                doc
                for chunk in in_chunks(ids)
                async for doc in self._cards.find({"_id": {"$in": chunk}})
            ]
        return {doc["_id"]: from_document(doc) for doc in docs}

    async def save(self, state: CorporateAction, previous_revision: int) -> bool:
        """Store `state` if the stored card is still at `previous_revision`."""
        if previous_revision == 0:
            try:
                async with translated():
                    await self._cards.insert_one(to_document(state))
            except DuplicateKey:
                return False
            return True
        async with translated():
            result = await self._cards.update_one(*_update(state, previous_revision))
        return result.matched_count == 1

    async def save_many(self, changes: Sequence[tuple[CorporateAction, int]]) -> set[str]:
        """Store each `(state, previous_revision)` as `save` does: the new cards
        in one unordered insert, the updates in one transaction (one alone: a
        plain update). Returns the ids not stored (a revision moved on)."""
        if len(changes) == 1:
            state, previous = changes[0]
            return set() if await self.save(state, previous) else {state.id}
        stale: set[str] = set()
        new = [to_document(state) for state, previous in changes if previous == 0]
        if new:
            for doc, error in zip(new, await insert_unordered(self._cards, new), strict=True):
                if isinstance(error, DuplicateKey):
                    stale.add(doc["_id"])
                elif error is not None:
                    raise error
        updates = [(state, previous) for state, previous in changes if previous != 0]
        if len(updates) == 1:
            stale |= await self.save_many(updates)
        elif updates:
            stale |= await self._update_many(updates)
        return stale

    async def _update_many(self, updates: Sequence[tuple[CorporateAction, int]]) -> set[str]:
        """The guarded updates in one commit; the ids whose guard did not match.
        A guard that does not match aborts the transaction (which of the
        updates matched is not told by a bulk write): the cards no longer at
        their previous revision are left out and the rest written again."""
        if self._sessions is None:
            return {state.id for state, previous in updates if not await self.save(state, previous)}
        stale: set[str] = set()
        while updates:
            try:
                await self._update_in_transaction(self._sessions, updates)
                break
            except _RevisionMoved:
                ids = [state.id for state, _ in updates]
                async with translated():
                    stored = {
                        doc["_id"]: doc["revision"]
                        for chunk in in_chunks(ids)
                        async for doc in self._cards.find({"_id": {"$in": chunk}}, {"revision": 1})
                    }
                moved = {
                    state.id for state, previous in updates if stored.get(state.id) != previous
                }
                stale |= moved
                updates = [
                    (state, previous) for state, previous in updates if state.id not in moved
                ]
        return stale

    async def _update_in_transaction(
        self, sessions: TransactionSessions, updates: Sequence[tuple[CorporateAction, int]]
    ) -> None:
        operations = [UpdateOne(*_update(state, previous)) for state, previous in updates]

        async def write(session: AsyncClientSession) -> None:
            result = await self._cards.bulk_write(operations, ordered=False, session=session)
            if result.matched_count < len(operations):
                raise _RevisionMoved  # aborts the transaction: nothing of it is stored

        await sessions.run(write)

    async def page(
        self, query: CardQuery, first: int, after: str | None
    ) -> tuple[list[CorporateAction], bool]:
        """Newest first (ids are time-ordered); keyset paging on the id."""
        conditions = _mongo_filter(query)
        if after is not None:
            # Beside the filter's fields, not under an `$and`: SecantusDB plans
            # an `$and` as a collection scan (tests/notices/test_paging_plans.py).
            conditions["_id"] = {**conditions.get("_id", {}), "$lt": after}
        async with translated():
            cursor = self._cards.find(conditions).sort("_id", DESCENDING).limit(first + 1)
            if set(conditions) <= {"_id"}:  # unfiltered: SecantusDB would scan and sort
                cursor = cursor.hint([("_id", ASCENDING)])
            docs = [doc async for doc in cursor]
        return [from_document(doc) for doc in docs[:first]], len(docs) > first

    async def count(self, query: CardQuery) -> int:
        async with translated():
            return await self._cards.count_documents(_mongo_filter(query))
