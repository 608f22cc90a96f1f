"""MongoNoticeProjectionStore: what the notices projector writes.

`notices` holds one document per corporate action and account (the latest
issue of that depositor's notice); `notice_subscriptions` remembers which
corporate actions follow which (isin, record date), so a positions snapshot
finds the actions it affects. Writes are guarded by the notice version: a
stale or repeated write never replaces a newer notice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from adapters.mongo.client import Document
from adapters.mongo.errors import translated

NOTICES = "notices"
SUBSCRIPTIONS = "notice_subscriptions"
_DUPLICATE_KEY = 11000


class MongoNoticeProjectionStore:
    def __init__(self, db: AsyncDatabase[Document], notices: str = NOTICES) -> None:
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

    async def stored_between(self, action_id: str, first: str, last: str) -> dict[str, Document]:
        """The stored notices of accounts first..last (inclusive) for this action."""
        async with translated():
            cursor = self._notices.find(
                {"corporateActionId": action_id, "accountId": {"$gte": first, "$lte": last}},
                {"accountId": 1, "version": 1, "contentHash": 1, "acknowledgedAt": 1},
            )
            return {doc["accountId"]: doc async for doc in cursor}

    async def acknowledge(self, notice_id: str, version: int, at: datetime) -> bool:
        """Mark `version` of the notice acknowledged at `at`.

        Guarded: only while the stored notice is still at `version` (an
        acknowledgement of a superseded version means nothing for the new one)
        and not yet acknowledged (a redelivery keeps the first time).
        """
        async with translated():
            result = await self._notices.update_one(
                {"_id": notice_id, "version": version, "acknowledgedAt": None},
                {"$set": {"acknowledgedAt": at}},
            )
        return result.modified_count == 1

    async def write(self, new: Sequence[Document], changed: Sequence[Document]) -> int:
        """Store notices; returns how many were written.

        `new` were absent when read, so they are plain inserts (the fan-out's
        common case, and much cheaper than upserts). One that a concurrent run
        inserted meanwhile falls back to the guarded replace, like `changed`:
        replaced only when the stored version is older.
        """
        written = 0
        clashed: list[Document] = []
        async with translated():
            if new:
                try:
                    written += len(
                        (await self._notices.insert_many(new, ordered=False)).inserted_ids
                    )
                except BulkWriteError as exc:
                    errors = _only_duplicates(exc)
                    written += len(new) - len(errors)
                    clashed = [new[e["index"]] for e in errors]
            replacements = [*changed, *clashed]
            if replacements:
                operations: list[Any] = [
                    ReplaceOne(
                        {"_id": doc["_id"], "version": {"$lt": doc["version"]}}, doc, upsert=True
                    )
                    for doc in replacements
                ]
                try:
                    result = await self._notices.bulk_write(operations, ordered=False)
                    written += result.upserted_count + result.modified_count
                except BulkWriteError as exc:
                    # A newer notice is already stored (a concurrent or later run): keep it.
                    written += len(replacements) - len(_only_duplicates(exc))
        return written


def _only_duplicates(exc: BulkWriteError) -> list[dict[str, Any]]:
    """The write errors of a bulk write, re-raising unless all are duplicate keys."""
    errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
    if any(e.get("code") != _DUPLICATE_KEY for e in errors):
        raise exc
    return errors
