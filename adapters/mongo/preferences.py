"""MongoPreferenceStore: the `notification_preferences` read model, one
document per account (`_id` the account id), as the preferences projector
writes it. A write is guarded by the stream version: a redelivered or stale
event never replaces newer preferences."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.ports import DuplicateKey
from domain.preferences import Preferences

PREFERENCES = "notification_preferences"


class MongoPreferenceStore:
    def __init__(self, db: AsyncDatabase[Document], collection: str = PREFERENCES) -> None:
        self._preferences = db[collection]

    async def save(self, preferences: Preferences, version: int, updated_at: datetime) -> bool:
        """Store `preferences` as stream `version`; False when a newer one is stored."""
        document = {**preferences.to_payload(), "version": version, "updatedAt": updated_at}
        try:
            async with translated():
                result = await self._preferences.update_one(
                    {"_id": preferences.account_id, "version": {"$lt": version}},
                    {"$set": document},
                    upsert=True,
                )
        except DuplicateKey:
            return False  # the account's document holds this version or a newer one
        return result.modified_count > 0 or result.upserted_id is not None

    async def get(self, account_id: str) -> Document | None:
        async with translated():
            return await self._preferences.find_one({"_id": account_id})

    async def get_many(self, account_ids: Collection[str]) -> dict[str, Preferences]:
        """The preferences of those of `account_ids` that have any."""
        if not account_ids:
            return {}
        async with translated():
            cursor = self._preferences.find({"_id": {"$in": sorted(account_ids)}})
            return {doc["_id"]: Preferences.from_payload(doc) async for doc in cursor}
