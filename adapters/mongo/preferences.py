"""MongoPreferenceStore: the `notification_preferences` read model, one
document per account (`_id` the account id), as the preferences projector
writes it — the PreferenceStore port (domain/ports/).

Shape: the current state (`accountId, channels, email, pushToken, bic`), its
stream `version`, global `sequence` and `updatedAt`, and `history`: the last
HISTORY states, each with its version and sequence, oldest first — what the
dispatcher reads to plan a notice version from the preferences in force when
it was issued. A write is guarded by the stream version: a redelivered or
stale event never replaces newer preferences nor enters the history twice.
Every read and write filters on `_id` alone (the guard sits in the update
pipeline): SecantusDB serves that as a key lookup, but scans the collection
for `_id` plus any other field.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document, in_chunks
from adapters.mongo.errors import translated
from domain.ports import StoredPreferences
from domain.preferences import Preferences

PREFERENCES = "notification_preferences"
# States kept per account: a notice is planned seconds after its issue, so the
# one in force then is among the last few changes of the account.
HISTORY = 16


class MongoPreferenceStore:
    def __init__(self, db: AsyncDatabase[Document], collection: str = PREFERENCES) -> None:
        self._preferences = db[collection]

    async def save(
        self, preferences: Preferences, version: int, sequence: int, updated_at: datetime
    ) -> bool:
        """Store `preferences` as stream `version`, set at global `sequence`;
        False when this version or a newer one is stored."""
        state = {**preferences.to_payload(), "version": version, "sequence": sequence}
        current = {**state, "updatedAt": updated_at}
        newer = {"$lt": [{"$ifNull": ["$version", 0]}, version]}
        history = {
            "$slice": [{"$concatArrays": [{"$ifNull": ["$history", []]}, [state]]}, -HISTORY]
        }
        changes = {
            field: {"$cond": [newer, {"$literal": value}, f"${field}"]}
            for field, value in current.items()
        }
        changes["history"] = {"$cond": [newer, history, "$history"]}
        async with translated():
            result = await self._preferences.update_one(
                {"_id": preferences.account_id}, [{"$set": changes}], upsert=True
            )
        return result.modified_count > 0 or result.upserted_id is not None

    async def get(self, account_id: str) -> StoredPreferences | None:
        async with translated():
            doc = await self._preferences.find_one({"_id": account_id}, {"history": 0})
        if doc is None:
            return None
        updated_at: datetime = doc["updatedAt"]
        return StoredPreferences(
            Preferences.from_payload(doc),
            int(doc.get("version") or 0),
            updated_at if updated_at.tzinfo else updated_at.replace(tzinfo=UTC),
        )

    async def current(self, account_ids: Collection[str]) -> dict[str, Preferences]:
        """The preferences of those of `account_ids` that have any."""
        return {
            account: Preferences.from_payload(doc)
            for account, doc in (await self._documents(account_ids)).items()
        }

    async def in_force(
        self, wanted: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], Preferences]:
        documents = await self._documents({account for account, _ in wanted})
        found: dict[tuple[str, int], Preferences] = {}
        for account, sequence in wanted:
            doc = documents.get(account)
            state = None if doc is None else _in_force(doc, sequence)
            if state is not None:
                found[account, sequence] = Preferences.from_payload(state)
        return found

    async def _documents(self, account_ids: Collection[str]) -> dict[str, Document]:
        if not account_ids:
            return {}
        async with translated():
            return {
                doc["_id"]: doc
                for chunk in in_chunks(sorted(account_ids))
                async for doc in self._preferences.find({"_id": {"$in": chunk}})
            }


def _in_force(doc: Document, sequence: int) -> Mapping[str, Any] | None:
    """The state of `doc` in force at global `sequence` (<= 0: the current one).
    A document written before the history was kept counts as always in force;
    when the history no longer reaches back to `sequence`, its oldest state
    stands in (the account changed its preferences HISTORY times since)."""
    history: list[Mapping[str, Any]] = doc.get("history") or []
    if sequence <= 0 or not history:
        return doc
    earlier = [state for state in history if int(state.get("sequence") or 0) <= sequence]
    if earlier:
        return earlier[-1]
    return history[0] if len(history) >= HISTORY else None
