"""MongoNoticeStore: the `notices` read model — one document per depositor
notice (one corporate action, one account), as the notices projector writes it.

Readers are depositors, and a depositor sees only the notices of the accounts
in their token (invariant 5). Every read here therefore takes the caller's
accounts and puts them into the store query itself: a notice of another
account is never fetched, so no later filter can forget to drop it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection, Sequence
from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.changes import Change, MongoChangeFeed, as_feed
from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from adapters.mongo.notice_projection import STATS_OF, marks_id, stats_id
from domain.codes import NoticeKind
from domain.ports import FeedChange, StoredNotice

NOTICES = "notices"

# Newest first; `_id` breaks ties between notices issued in the same millisecond.
_NEWEST_FIRST = [("issuedAt", DESCENDING), ("_id", DESCENDING)]
# The depositor's list: by account, newest first.
_BY_ACCOUNT = [("accountId", ASCENDING), *_NEWEST_FIRST]


def _accounts_filter(accounts: Collection[str], unread_only: bool) -> Document:
    conditions: Document = {"accountId": {"$in": sorted(accounts)}}
    if unread_only:
        conditions["acknowledgedAt"] = None  # matches null and missing
    return conditions


def issued_match(accounts: Collection[str]) -> Document:
    """Change-stream match: a notice of one of `accounts` was issued (NEW,
    UPDATE or CANCELLATION) — stored, or updated to a new version. The
    accounts are in the store's match, as in every other read here; an
    acknowledgement (an update without a new version) is not an issue."""
    return {
        "fullDocument.accountId": {"$in": sorted(accounts)},
        "$or": [
            {"operationType": {"$in": ["insert", "replace"]}},
            {
                "operationType": "update",
                "updateDescription.updatedFields.version": {"$exists": True},
            },
        ],
    }


def stored_notice(doc: Document) -> StoredNotice:
    """A `notices` document (as adapters.mongo.notice_projection writes it:
    `_id`, corporateActionId, accountId, version, kind, changedFields,
    caVersion, content, issuedAt, acknowledgedAt, deliveredAt) as the port's
    StoredNotice. Raises KeyError / ValueError on a document of another shape."""
    return StoredNotice(
        notice_id=str(doc["_id"]),
        corporate_action_id=str(doc["corporateActionId"]),
        account_id=str(doc["accountId"]),
        version=int(doc["version"]),
        kind=NoticeKind(doc["kind"]),
        issued_at=_utc(doc["issuedAt"]),
        content=doc.get("content") or {},
        changed_fields=tuple(doc.get("changedFields") or ()),
        ca_version=int(doc.get("caVersion") or 0),
        acknowledged_at=_optional_utc(doc.get("acknowledgedAt")),
        delivered_at=_optional_utc(doc.get("deliveredAt")),
    )


def _utc(value: datetime) -> datetime:
    # The client is tz-aware; a naive datetime (another client's) is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _issued_item(change: Change) -> StoredNotice | None:
    return None if change.document is None else stored_notice(change.document)


def _after(issued_at: datetime, notice_id: str) -> Document:
    """Strictly after (issuedAt, _id) in newest-first order."""
    return {
        "$or": [
            {"issuedAt": {"$lt": issued_at}},
            {"issuedAt": issued_at, "_id": {"$lt": notice_id}},
        ]
    }


class MongoNoticeStore:
    def __init__(self, db: AsyncDatabase[Document], collection: str = NOTICES) -> None:
        self._notices = db[collection]

    async def ensure_indexes(self) -> None:
        """The depositor's list (by account, newest first)."""
        async with translated():
            await self._notices.create_index(_BY_ACCOUNT)

    # --- depositors: always scoped to the caller's accounts -------------------

    async def page_for_accounts(
        self,
        accounts: Collection[str],
        first: int,
        after: tuple[datetime, str] | None,
        unread_only: bool,
    ) -> tuple[list[StoredNotice], bool]:
        """Up to `first` notices of `accounts`, newest first, after the keyset
        cursor (issuedAt, _id); and whether more follow."""
        if not accounts:
            return [], False
        conditions = _accounts_filter(accounts, unread_only)
        if after is not None:
            conditions = {"$and": [conditions, _after(*after)]}
        async with translated():
            # The hint: SecantusDB's planner scans the whole collection for the
            # cursor's `$or` (every page after the first) unless told the index
            # (tests/notices/test_paging_plans.py); MongoDB would pick it anyway.
            cursor = (
                self._notices.find(conditions)
                .sort(_NEWEST_FIRST)
                .hint(_BY_ACCOUNT)
                .limit(first + 1)
            )
            docs = [doc async for doc in cursor]
        return [stored_notice(doc) for doc in docs[:first]], len(docs) > first

    async def count_for_accounts(self, accounts: Collection[str], unread_only: bool) -> int:
        if not accounts:
            return 0
        async with translated():
            return await self._notices.count_documents(_accounts_filter(accounts, unread_only))

    async def get_for_accounts(
        self, notice_id: str, accounts: Collection[str]
    ) -> StoredNotice | None:
        """The notice if it belongs to one of `accounts`; None otherwise — a
        notice of another account is indistinguishable from a missing one."""
        if not accounts:
            return None
        async with translated():
            doc = await self._notices.find_one(
                {"_id": notice_id, "accountId": {"$in": sorted(accounts)}}
            )
        return None if doc is None else stored_notice(doc)

    # --- operators: counts per corporate action -------------------------------

    async def by_action(self, action_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """(total, delivered, acknowledged) per corporate action, in one round
        trip: the sums of the summary documents kept exact beside the notices
        (see adapters.mongo.notice_projection), not a count."""
        ids = [i for a in action_ids for i in (stats_id(a), marks_id(a))]
        async with translated():
            cursor = self._notices.find({"_id": {"$in": ids}})
            rows = [row async for row in cursor]
        counts: dict[str, tuple[int, int, int]] = {}
        for row in rows:
            total, delivered, acknowledged = counts.get(row[STATS_OF], (0, 0, 0))
            counts[row[STATS_OF]] = (
                total + int(row["total"]),
                delivered + int(row["delivered"]),
                acknowledged + int(row["acknowledged"]),
            )
        return counts

    async def page_for_action(
        self, action_id: str, first: int, after: str | None
    ) -> tuple[list[StoredNotice], bool]:
        """Operators: up to `first` notices of one corporate action in account
        order (the projection's index), after the account `after`; and whether
        more follow."""
        conditions: Document = {"corporateActionId": action_id}
        if after is not None:
            conditions["accountId"] = {"$gt": after}
        async with translated():
            cursor = self._notices.find(conditions).sort("accountId", ASCENDING).limit(first + 1)
            docs = [doc async for doc in cursor]
        return [stored_notice(doc) for doc in docs[:first]], len(docs) > first


class MongoNoticeIssueFeed:
    """The NoticeIssueFeed port: a change stream on the notices matching
    `issued_match` of the followed accounts."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = NOTICES) -> None:
        self._changes = MongoChangeFeed(db, collection)

    @property
    def name(self) -> str:
        return self._changes.name

    def follow(
        self, accounts: Callable[[], Collection[str]], reopen: asyncio.Event
    ) -> AsyncGenerator[FeedChange[StoredNotice], None]:
        changes = self._changes.follow(lambda: issued_match(accounts()), reopen)
        return as_feed(changes, _issued_item)
