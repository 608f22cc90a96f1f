"""MongoLease: a time-limited lease in the store, so that exactly one process
runs a singleton task (the outbox relay) at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.ports import DuplicateKey

LEASES = "leases"


class MongoLease:
    def __init__(
        self, db: AsyncDatabase[Document], name: str, holder: str, ttl_seconds: float = 10.0
    ) -> None:
        self._leases = db[LEASES]
        self._name = name
        self._holder = holder
        self._ttl = timedelta(seconds=ttl_seconds)
        # Renew at a third of the TTL, not on every call: the relay asks often.
        self._renew_after = datetime.min.replace(tzinfo=UTC)

    async def acquire(self) -> bool:
        """Take or renew the lease; False when another live holder has it."""
        now = datetime.now(UTC)
        if now < self._renew_after:
            return True
        try:
            async with translated():
                await self._leases.find_one_and_update(
                    {
                        "_id": self._name,
                        "$or": [{"holder": self._holder}, {"expiresAt": {"$lt": now}}],
                    },
                    {"$set": {"holder": self._holder, "expiresAt": now + self._ttl}},
                    upsert=True,
                )
        except DuplicateKey:
            return False  # the upsert lost to a live holder's document
        self._renew_after = now + self._ttl / 3
        return True

    async def release(self) -> None:
        """Give the lease up if held (a clean stop): the next holder — e.g. the
        same service restarted — need not wait for it to expire."""
        async with translated():
            await self._leases.delete_one({"_id": self._name, "holder": self._holder})
        self._renew_after = datetime.min.replace(tzinfo=UTC)
