"""MongoNoticeProjectionStore: what the notices projector writes.

`notices` holds one document per corporate action and account (the latest
issue of that depositor's notice); `notice_subscriptions` remembers which
corporate actions follow which (isin, record date), so a positions snapshot
finds the actions it affects. Writes are guarded by the notice version: a
stale or repeated write never replaces a newer notice.

Beside the notices of each action, in the same collection, one summary
document counts them (`_id` "stats|<action id>": total, delivered,
acknowledged), so the portal reads three numbers instead of counting
100 000 notices. Every write that changes a count moves it in the same
transaction, from what the transaction itself read: the counts stay exact
through redeliveries, concurrent workers and crashes, and a rebuild's
collection switch-over carries them along with the notices.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.ports import DuplicateKey

NOTICES = "notices"
SUBSCRIPTIONS = "notice_subscriptions"


class MongoNoticeProjectionStore:
    def __init__(self, db: AsyncDatabase[Document], notices: str = NOTICES) -> None:
        self._db = db
        self._notices = db[notices]
        self._subscriptions = db[SUBSCRIPTIONS]

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
        plan: Callable[[Mapping[str, Document]], Sequence[Document]],
    ) -> int:
        """In one transaction: read the stored notices of accounts first..last
        (inclusive) of this action, ask `plan` for the notices to store given
        those, write each that is absent or newer than the stored one, and
        move the action's counts by the difference. Returns how many were
        written. `plan` may run more than once (a conflicting concurrent
        write makes the transaction start over) and must be pure."""
        written = 0

        async def attempt(session: AsyncClientSession) -> None:
            nonlocal written
            cursor = self._notices.find(
                {"corporateActionId": action_id, "accountId": {"$gte": first, "$lte": last}},
                {"accountId": 1, "version": 1, "contentHash": 1, **_COUNTED},
                session=session,
            )
            stored = {doc["accountId"]: doc async for doc in cursor}
            new: list[Document] = []
            replacing: list[Document] = []
            moves = _Counts()
            for doc in plan(stored):
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
            written = len(new) + len(replacing)

        await self._in_transaction(attempt)
        return written

    async def acknowledge(self, notice_id: str, version: int, at: datetime) -> bool:
        """Mark `version` of the notice acknowledged at `at`.

        Guarded: only while the stored notice is still at `version` (an
        acknowledgement of a superseded version means nothing for the new one)
        and not yet acknowledged (a redelivery keeps the first time).
        """
        acknowledged = False

        async def attempt(session: AsyncClientSession) -> None:
            nonlocal acknowledged
            notice = await self._notices.find_one_and_update(
                {"_id": notice_id, "version": version, "acknowledgedAt": None},
                {"$set": {"acknowledgedAt": at}},
                projection={"corporateActionId": 1},
                session=session,
            )
            acknowledged = notice is not None
            if notice is not None:
                await self._count(notice["corporateActionId"], _Counts(acknowledged=1), session)

        await self._in_transaction(attempt)
        return acknowledged

    async def _count(self, action_id: str, moves: _Counts, session: AsyncClientSession) -> None:
        if moves:
            await self._notices.update_one(
                {"_id": stats_id(action_id)},
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
        for remaining in range(_DUPLICATE_RETRIES, -1, -1):
            try:
                async with translated(), self._db.client.start_session() as session:
                    await session.with_transaction(attempt)
                return
            except DuplicateKey:
                if remaining == 0:
                    raise


STATS_OF = "statsOf"
_COUNTED = {"acknowledgedAt": 1, "deliveredAt": 1}
_DUPLICATE_RETRIES = 5


def _replace(notice: Document) -> ReplaceOne[Document]:
    # the transaction read an older version: this guard only repeats it
    return ReplaceOne({"_id": notice["_id"], "version": {"$lt": notice["version"]}}, notice)


def stats_id(action_id: str) -> str:
    """The `_id` of an action's summary document in the notices collection."""
    return f"stats|{action_id}"


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
