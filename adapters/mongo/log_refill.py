"""MongoLogRefills: whether the event log still has to be re-filled from the
record — stored, so a crash at any point of a re-fill re-fills on the next
start (services.Services.prepare_log).

One document, `{_id: "refill", needed: n, done: m}` in `event_log`: `needed`
counts the times a process found the log new (its topics missing, or a
memory-only broker restarted), recorded *before* it creates anything;
`done` is the highest `needed` a completed re-queue covered. A re-fill is
pending while needed > done.
"""

from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated

EVENT_LOG = "event_log"
_REFILL = "refill"


class MongoLogRefills:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._state = db[EVENT_LOG]

    async def needed(self) -> None:
        """The log is new: record it before creating anything."""
        async with translated():
            await self._state.update_one(
                {"_id": _REFILL}, {"$inc": {"needed": 1}, "$setOnInsert": {"done": 0}}, upsert=True
            )

    async def pending(self) -> int | None:
        """The `needed` count a re-fill starting now covers, or None when no
        re-fill is pending."""
        async with translated():
            doc = await self._state.find_one({"_id": _REFILL})
        if doc is None or int(doc["needed"]) <= int(doc["done"]):
            return None
        return int(doc["needed"])

    async def done(self, covered: int) -> None:
        """A re-queue that started after `covered` was read is complete (a log
        found new again meanwhile stays pending)."""
        async with translated():
            await self._state.find_one_and_update(
                {"_id": _REFILL},
                {"$max": {"done": covered}},
                return_document=ReturnDocument.AFTER,
            )
