"""MongoDeliveryLog: the `deliveries` collection, one document per (notice,
version, channel) — `_id` is `domain.delivery.delivery_id` — the dispatcher's
record of what goes out and the queue its channel workers drain.

Shape: `noticeId, version, channel, accountId, corporateActionId, kind,
address, messageId, status (PENDING|RETRYING|DELIVERED|DEAD_LETTERED),
attempts, nextAttemptAt, claimedUntil, lastError, plannedAt, deliveredAt,
issuedAt, notice` (the `NoticeIssued` payload the channel renders).

Exactly once: `plan` inserts each delivery once (a re-plan after a crash finds
it); `due` lists what is waiting (the workers' sweep); `claim` atomically
counts the attempt and leases the delivery to one worker *before* the call;
`delivered` / `failed` record the outcome after it. `settled` turns true once
the notice-level outcome (the notice's `deliveredAt`, `noticeStats.delivered`)
is recorded: the settler finds what a crash left unsettled.
A worker that dies between the two leaves a lease that runs out, and the next
claim sends again under the same message id, which the receiver recognises.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from domain.delivery import DeliveryStatus, IssuedNotice, OutboundNotice, delivery_id
from domain.preferences import DeliveryChannel

DELIVERIES = "deliveries"
_OPEN = [DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value]


class MongoDeliveryLog:
    def __init__(self, db: AsyncDatabase[Document], collection: str = DELIVERIES) -> None:
        self._deliveries = db[collection]

    async def ensure_indexes(self) -> None:
        async with translated():
            await self._deliveries.create_index(
                [("channel", ASCENDING), ("status", ASCENDING), ("nextAttemptAt", ASCENDING)]
            )
            await self._deliveries.create_index([("noticeId", ASCENDING), ("version", ASCENDING)])
            await self._deliveries.create_index([("status", ASCENDING), ("settled", ASCENDING)])

    async def plan(self, outbound: Sequence[OutboundNotice], now: datetime) -> int:
        """Record deliveries not recorded yet; returns how many were new."""
        operations = [
            UpdateOne(
                {"_id": delivery_id(o.notice.notice_id, o.notice.version, o.channel)},
                {"$setOnInsert": _document(o, now)},
                upsert=True,
            )
            for o in outbound
        ]
        if not operations:
            return 0
        async with translated():
            result = await self._deliveries.bulk_write(operations, ordered=False)
        return result.upserted_count

    async def earlier_channels(
        self, notice_id: str, before_version: int
    ) -> dict[DeliveryChannel, str]:
        """Channels earlier versions were planned on (not dead-lettered), with the
        address the latest of them used — where a CANCELLATION goes."""
        async with translated():
            cursor = self._deliveries.find(
                {
                    "noticeId": notice_id,
                    "version": {"$lt": before_version},
                    "status": {"$ne": DeliveryStatus.DEAD_LETTERED.value},
                },
                {"channel": 1, "address": 1, "version": 1},
            ).sort("version", ASCENDING)
            return {DeliveryChannel(d["channel"]): str(d["address"]) async for d in cursor}

    async def due(self, channel: DeliveryChannel, now: datetime, limit: int) -> list[str]:
        """Ids of up to `limit` deliveries of `channel` due now and not leased,
        oldest due first (one index range read)."""
        async with translated():
            cursor = (
                self._deliveries.find(
                    {
                        "channel": channel.value,
                        "status": {"$in": _OPEN},
                        "nextAttemptAt": {"$lte": now},
                        "claimedUntil": {"$lte": now},
                    },
                    {"_id": 1},
                )
                .sort("nextAttemptAt", ASCENDING)
                .limit(limit)
            )
            return [str(d["_id"]) async for d in cursor]

    async def claim(self, key: str, now: datetime, lease: timedelta) -> Document | None:
        """Take delivery `key` if it is still due and not leased: count the
        attempt and lease it, atomically (None: delivered, or someone holds it)."""
        async with translated():
            return await self._deliveries.find_one_and_update(
                {
                    "_id": key,
                    "status": {"$in": _OPEN},
                    "nextAttemptAt": {"$lte": now},
                    "claimedUntil": {"$lte": now},
                },
                {"$inc": {"attempts": 1}, "$set": {"claimedUntil": now + lease}},
                return_document=ReturnDocument.AFTER,
            )

    async def release(self, key: str, now: datetime, retry_at: datetime) -> None:
        """Give a claimed delivery back without it counting (the breaker was open)."""
        async with translated():
            await self._deliveries.update_one(
                {"_id": key},
                {
                    "$inc": {"attempts": -1},
                    "$set": {"claimedUntil": now, "nextAttemptAt": retry_at},
                },
            )

    async def delivered(self, key: str, at: datetime) -> bool:
        """Record success; False when it was already recorded."""
        async with translated():
            result = await self._deliveries.update_one(
                {"_id": key, "status": {"$ne": DeliveryStatus.DELIVERED.value}},
                {
                    "$set": {
                        "status": DeliveryStatus.DELIVERED.value,
                        "deliveredAt": at,
                        "lastError": None,
                        "claimedUntil": at,
                    }
                },
            )
        return result.modified_count > 0

    async def failed(self, key: str, error: str, now: datetime, retry_at: datetime | None) -> None:
        """Record a failed attempt: retry at `retry_at`, or dead-letter (None)."""
        status = DeliveryStatus.DEAD_LETTERED if retry_at is None else DeliveryStatus.RETRYING
        async with translated():
            await self._deliveries.update_one(
                {"_id": key, "status": {"$in": _OPEN}},
                {
                    "$set": {
                        "status": status.value,
                        "lastError": error[:1000],
                        "claimedUntil": now,
                        "nextAttemptAt": retry_at or now,
                    }
                },
            )

    async def unsettled(self, limit: int) -> list[tuple[str, int]]:
        """(notice, version)s with a delivery delivered but not yet settled."""
        async with translated():
            cursor = self._deliveries.find(
                {"status": DeliveryStatus.DELIVERED.value, "settled": False},
                {"noticeId": 1, "version": 1},
            ).limit(limit)
            return list(dict.fromkeys([(d["noticeId"], d["version"]) async for d in cursor]))

    async def settle(self, versions: Sequence[tuple[str, int]]) -> None:
        """The notice-level outcome of these versions is recorded."""
        if not versions:
            return
        async with translated():
            await self._deliveries.update_many(
                {"$or": [{"noticeId": n, "version": v} for n, v in versions]},
                {"$set": {"settled": True}},
            )

    async def of_version(self, notice_id: str, version: int) -> list[Document]:
        async with translated():
            cursor = self._deliveries.find({"noticeId": notice_id, "version": version})
            return [d async for d in cursor.sort("channel", ASCENDING)]

    async def of_notices(
        self, keys: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Document]]:
        """The deliveries of each (notice, version), in one round trip."""
        if not keys:
            return {}
        found: dict[tuple[str, int], list[Document]] = {k: [] for k in keys}
        async with translated():
            cursor = self._deliveries.find(
                {"$or": [{"noticeId": n, "version": v} for n, v in keys]}
            ).sort("channel", ASCENDING)
            async for doc in cursor:
                found.setdefault((doc["noticeId"], doc["version"]), []).append(doc)
        return found

    async def dead_letters(self, channel: DeliveryChannel | None = None) -> list[Document]:
        query: Document = {"status": DeliveryStatus.DEAD_LETTERED.value}
        if channel is not None:
            query["channel"] = channel.value
        async with translated():
            cursor = self._deliveries.find(query).sort([("channel", ASCENDING), ("_id", ASCENDING)])
            return [d async for d in cursor]

    async def requeue(self, key: str, address: str | None, now: datetime) -> bool:
        """Put a dead letter back in its channel's queue with fresh attempts
        (and the account's current address, e.g. a fixed push token)."""
        changes: Document = {
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "nextAttemptAt": now,
            "claimedUntil": now,
            "settled": False,
        }
        if address:
            changes["address"] = address
        async with translated():
            result = await self._deliveries.update_one(
                {"_id": key, "status": DeliveryStatus.DEAD_LETTERED.value}, {"$set": changes}
            )
        return result.modified_count > 0


def _document(outbound: OutboundNotice, now: datetime) -> Document:
    notice: IssuedNotice = outbound.notice
    return {
        "noticeId": notice.notice_id,
        "version": notice.version,
        "channel": outbound.channel.value,
        "accountId": notice.account_id,
        "corporateActionId": notice.corporate_action_id,
        "kind": notice.kind.value,
        "address": outbound.address,
        "messageId": outbound.message_id,
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "nextAttemptAt": now,
        "claimedUntil": now,
        "lastError": None,
        "plannedAt": now,
        "deliveredAt": None,
        "issuedAt": notice.issued_at,
        "settled": False,  # the notice's deliveredAt is set once all its channels delivered
        "notice": notice.to_payload(),
    }
