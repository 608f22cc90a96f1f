"""MongoDeadLetterStore: the `dead_letters` collection, one document per
parked record (shape: domain/dead_letters.py), `_id` the letter's stable id."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.dead_letters import DeadLetter, DeadLetterStatus

DEAD_LETTERS = "dead_letters"


def _to_document(letter: DeadLetter) -> Document:
    return {
        "source": letter.source,
        "kind": letter.kind,
        "reason": letter.reason,
        "eventId": letter.event_id,
        "aggregateType": letter.aggregate_type,
        "aggregateId": letter.aggregate_id,
        "version": letter.version,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "payload": letter.payload,
    }


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _from_document(doc: Document) -> DeadLetter:
    parked_at = _utc(doc["parkedAt"])
    assert parked_at is not None
    return DeadLetter(
        id=doc["_id"],
        source=doc["source"],
        kind=doc["kind"],
        reason=doc["reason"],
        parked_at=parked_at,
        event_id=doc.get("eventId"),
        aggregate_type=doc.get("aggregateType"),
        aggregate_id=doc.get("aggregateId"),
        version=doc.get("version"),
        topic=doc.get("topic"),
        partition=doc.get("partition"),
        offset=doc.get("offset"),
        payload=doc.get("payload"),
        status=DeadLetterStatus(doc["status"]),
        attempts=int(doc.get("attempts", 1)),
        replayed_at=_utc(doc.get("replayedAt")),
    )


class MongoDeadLetterStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._letters = db[DEAD_LETTERS]

    async def ensure_indexes(self) -> None:
        async with translated():
            await self._letters.create_index(
                [("status", ASCENDING), ("source", ASCENDING), ("parkedAt", ASCENDING)]
            )

    async def park(self, letter: DeadLetter) -> None:
        async with translated():
            await self._letters.update_one(
                {"_id": letter.id},
                {
                    "$set": {**_to_document(letter), "status": DeadLetterStatus.PARKED.value},
                    "$setOnInsert": {"parkedAt": letter.parked_at},
                    "$inc": {"attempts": 1},
                    "$unset": {"replayedAt": ""},
                },
                upsert=True,
            )

    async def find(
        self,
        source_prefix: str | None = None,
        ids: Sequence[str] = (),
        status: DeadLetterStatus | None = DeadLetterStatus.PARKED,
    ) -> list[DeadLetter]:
        query: Document = {}
        if source_prefix:
            query["source"] = {"$regex": f"^{re.escape(source_prefix)}"}
        if ids:
            query["_id"] = {"$in": list(ids)}
        if status is not None:
            query["status"] = status.value
        async with translated():
            cursor = self._letters.find(query).sort([("parkedAt", ASCENDING), ("_id", ASCENDING)])
            return [_from_document(doc) async for doc in cursor]

    async def replayed(self, letter_id: str, at: datetime, *, attempts: int) -> None:
        async with translated():
            await self._letters.update_one(
                {"_id": letter_id, "attempts": attempts},
                {"$set": {"status": DeadLetterStatus.REPLAYED.value, "replayedAt": at}},
            )

    async def failed_again(self, letter_id: str, reason: str, at: datetime) -> None:
        async with translated():
            await self._letters.update_one(
                {"_id": letter_id},
                {"$set": {"reason": reason, "lastFailedAt": at}, "$inc": {"attempts": 1}},
            )

    async def count(self, status: DeadLetterStatus = DeadLetterStatus.PARKED) -> int:
        async with translated():
            return await self._letters.count_documents({"status": status.value})
