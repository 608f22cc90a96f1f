"""MongoDeliveryLog: the `deliveries` collection, one document per (notice,
version, channel) — `_id` is `domain.delivery.delivery_id` — the dispatcher's
record of what goes out and the queue its channel workers drain.

Shape: `noticeId, version, channel, accountId, corporateActionId, kind,
address, messageId, status (PENDING|RETRYING|DELIVERED|DEAD_LETTERED),
attempts, nextAttemptAt, claimedUntil, lastError, plannedAt, deliveredAt,
issuedAt, notice` (the `NoticeIssued` payload the channel renders).

Exactly once: `plan` inserts each delivery once (a re-plan after a crash finds
it); `due` lists what is waiting (the workers' sweep); `claim` counts the
attempt and leases the deliveries to one worker *before* the calls, a batch in
one write; `record` writes the outcomes after them, a batch in one write. `settled` turns true once
the notice-level outcome (the notice's `deliveredAt`, `noticeStats.delivered`)
is recorded: the settler finds what a crash left unsettled.
A worker that dies between the two leaves a lease that runs out, and the next
claim sends again under the same message id, which the receiver recognises.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document, in_chunks
from adapters.mongo.errors import translated
from domain.delivery import (
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    IssuedNotice,
    OutboundNotice,
    Outcome,
    delivery_id,
)
from domain.ports import DuplicateKey
from domain.preferences import DeliveryChannel

DELIVERIES = "deliveries"
_OPEN = [DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value]
_DUE_INDEX = [("channel", ASCENDING), ("status", ASCENDING), ("nextAttemptAt", ASCENDING)]


class MongoDeliveryLog:
    def __init__(self, db: AsyncDatabase[Document], collection: str = DELIVERIES) -> None:
        self._deliveries = db[collection]

    async def ensure_indexes(self) -> None:
        async with translated():
            await self._deliveries.create_index(_DUE_INDEX)
            await self._deliveries.create_index([("noticeId", ASCENDING), ("version", ASCENDING)])
            await self._deliveries.create_index([("status", ASCENDING), ("settled", ASCENDING)])

    async def plan(self, outbound: Sequence[OutboundNotice], now: datetime) -> int:
        """Record deliveries not recorded yet; returns how many were new. Plain
        inserts: one already recorded (a redelivered batch) is a duplicate key,
        which leaves it as it is."""
        documents = [
            {
                "_id": delivery_id(o.notice.notice_id, o.notice.version, o.channel),
                **_document(o, now),
            }
            for o in outbound
        ]
        if not documents:
            return 0
        try:
            async with translated():
                result = await self._deliveries.insert_many(documents, ordered=False)
        except DuplicateKey as exc:
            return exc.written
        return len(result.inserted_ids)

    async def earlier_channels(
        self, versions: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], dict[DeliveryChannel, str]]:
        """For each (notice, version): the channels earlier versions were
        planned on (not dead-lettered), with the address the latest of them
        used — where a CANCELLATION goes. One read for the lot, by `noticeId`
        alone (the (noticeId, version) index; versions and statuses are
        picked here: a second condition in the filter makes SecantusDB scan
        the collection)."""
        if not versions:
            return {}
        found: dict[tuple[str, int], dict[DeliveryChannel, str]] = {v: {} for v in versions}
        fields = {"noticeId": 1, "channel": 1, "address": 1, "version": 1, "status": 1}
        async with translated():
            earlier = [
                d
                for chunk in in_chunks(sorted({n for n, _ in versions}))
                async for d in self._deliveries.find({"noticeId": {"$in": chunk}}, fields)
                if d["status"] != DeliveryStatus.DEAD_LETTERED.value
            ]
        wanted: dict[str, list[int]] = {}
        for notice_id, version in versions:
            wanted.setdefault(notice_id, []).append(version)
        for doc in sorted(earlier, key=lambda d: int(d["version"])):
            for version in wanted[doc["noticeId"]]:
                if doc["version"] < version:
                    found[doc["noticeId"], version][DeliveryChannel(doc["channel"])] = str(
                        doc["address"]
                    )
        return found

    async def due(self, channel: DeliveryChannel, now: datetime, limit: int) -> list[str]:
        """Ids of up to `limit` deliveries of `channel` due now and not leased,
        oldest due first: one index range read per open status — equalities
        on `channel` and `status` and the one range on `nextAttemptAt`, the
        shape SecantusDB serves from the (channel, status, nextAttemptAt)
        index. It reads only the open deliveries due now; the lease is checked
        here. (A second range in the filter, or a `$in` on the status, makes
        it scan the collection; a `hint` makes it walk the whole index — every
        delivery ever made — on each sweep.)"""
        found: list[tuple[datetime, str]] = []
        async with translated():
            for status in _OPEN:
                cursor = self._deliveries.find(
                    {"channel": channel.value, "status": status, "nextAttemptAt": {"$lte": now}},
                    {"_id": 1, "nextAttemptAt": 1, "claimedUntil": 1},
                )
                found.extend(
                    [
                        (d["nextAttemptAt"], str(d["_id"]))
                        async for d in cursor
                        if d["claimedUntil"] <= now
                    ]
                )
        return [key for _, key in sorted(found)[:limit]]

    async def claim(
        self, keys: Sequence[str], now: datetime, lease: timedelta
    ) -> list[ClaimedDelivery]:
        """Take those of `keys` still due and not leased: count an attempt on
        each and lease them to this caller (one write per IN_LIMIT keys), then read them back."""
        if not keys:
            return []
        token = uuid.uuid4().hex
        due = {
            "$and": [
                {"$in": ["$status", _OPEN]},
                {"$lte": ["$nextAttemptAt", now]},
                {"$lte": ["$claimedUntil", now]},
            ]
        }
        claim = [
            _set_when(
                due,
                {
                    "attempts": {"$add": ["$attempts", 1]},
                    "claimedUntil": {"$literal": now + lease},
                    "claim": {"$literal": token},
                },
            )
        ]
        claimed: list[ClaimedDelivery] = []
        async with translated():
            for chunk in in_chunks(keys):
                await self._deliveries.update_many({"_id": {"$in": chunk}}, claim)
                claimed += [
                    ClaimedDelivery(_delivery(d), IssuedNotice.from_payload(d["notice"]))
                    async for d in self._deliveries.find({"_id": {"$in": chunk}})
                    if d.get("claim") == token
                ]
        return claimed

    async def record(self, outcomes: Sequence[Outcome]) -> set[str]:
        """Record the outcomes of claimed deliveries; returns the keys newly
        recorded as delivered. The deliveries go in one `update_many` by `_id`
        (`deliveredAt` the latest of their times: the batch is recorded once
        its last send returned); the rarer other outcomes in one bulk write."""
        if not outcomes:
            return set()
        delivered = [o for o in outcomes if o.status is DeliveryStatus.DELIVERED]
        others = [_outcome_write(o) for o in outcomes if o.status is not DeliveryStatus.DELIVERED]
        async with translated():
            if delivered:
                at = max(o.at for o in delivered)
                mark = [
                    _set_when(
                        {"$ne": ["$status", DeliveryStatus.DELIVERED.value]},
                        {
                            "status": {"$literal": DeliveryStatus.DELIVERED.value},
                            "deliveredAt": {"$literal": at},
                            "lastError": {"$literal": None},
                            "claimedUntil": {"$literal": at},
                        },
                    )
                ]
                for chunk in in_chunks([o.key for o in delivered]):
                    await self._deliveries.update_many({"_id": {"$in": chunk}}, mark)
            if others:
                await self._deliveries.bulk_write(others, ordered=False)
        return {o.key for o in delivered}

    async def unsettled(self, limit: int) -> list[tuple[str, int]]:
        """(notice, version)s with a delivery delivered but not yet settled."""
        async with translated():
            cursor = self._deliveries.find(
                {"status": DeliveryStatus.DELIVERED.value, "settled": False},
                {"noticeId": 1, "version": 1},
            ).limit(limit)
            return list(dict.fromkeys([(d["noticeId"], d["version"]) async for d in cursor]))

    async def settle(self, keys: Sequence[str]) -> None:
        """The notice-level outcome of these deliveries' versions is recorded
        (`keys`: delivery ids, every delivery of each settled version)."""
        if not keys:
            return
        async with translated():
            for chunk in in_chunks(keys):
                await self._deliveries.update_many(
                    {"_id": {"$in": chunk}}, {"$set": {"settled": True}}
                )

    async def of_version(self, notice_id: str, version: int) -> list[Delivery]:
        async with translated():
            cursor = self._deliveries.find(
                {"noticeId": notice_id, "version": version}, {"notice": 0}
            ).sort("channel", ASCENDING)
            return [_delivery(d) async for d in cursor]

    async def of_notices(
        self, keys: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Delivery]]:
        """The deliveries of each (notice, version), in one round trip."""
        if not keys:
            return {}
        found: dict[tuple[str, int], list[Delivery]] = {k: [] for k in keys}
        # One index range per notice ($in), the versions picked here: a
        # thousand-clause $or costs the store a plan per clause.
        async with translated():
            cursor = self._deliveries.find(
                {"noticeId": {"$in": list({n for n, _ in keys})}},
                {"notice": 0},
            ).sort("channel", ASCENDING)
            async for doc in cursor:
                key = (doc["noticeId"], doc["version"])
                if key in found:
                    found[key].append(_delivery(doc))
        return found

    async def dead_letters(self, channel: DeliveryChannel | None = None) -> list[Delivery]:
        query: Document = {"status": DeliveryStatus.DEAD_LETTERED.value}
        if channel is not None:
            query["channel"] = channel.value
        async with translated():
            cursor = self._deliveries.find(query, {"notice": 0}).sort(
                [("channel", ASCENDING), ("_id", ASCENDING)]
            )
            return [_delivery(d) async for d in cursor]

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
        dead = {"$eq": ["$status", DeliveryStatus.DEAD_LETTERED.value]}
        async with translated():
            result = await self._deliveries.update_one(
                {"_id": key},
                [_set_when(dead, {k: {"$literal": v} for k, v in changes.items()})],
            )
        return result.modified_count > 0


def _set_when(condition: Document, values: Document) -> Document:
    """An update-pipeline stage setting `values` where `condition` holds on the
    document, leaving it as it is elsewhere. The condition sits in the update,
    not in the filter, so the filter is `_id` alone: SecantusDB serves that
    as a primary-key lookup, but scans the collection for `_id` plus any other
    field. Still atomic per document."""
    return {
        "$set": {
            field: {"$cond": [condition, value, f"${field}"]} for field, value in values.items()
        }
    }


def _outcome_write(outcome: Outcome) -> UpdateOne:
    at = outcome.at
    if outcome.status is DeliveryStatus.PENDING:  # the breaker was open: not an attempt
        return UpdateOne(
            {"_id": outcome.key},
            {
                "$inc": {"attempts": -1},
                "$set": {"claimedUntil": at, "nextAttemptAt": outcome.retry_at},
            },
        )
    return UpdateOne(
        {"_id": outcome.key},
        [
            _set_when(
                {"$in": ["$status", _OPEN]},
                {
                    "status": {"$literal": outcome.status.value},
                    "lastError": {"$literal": (outcome.error or "")[:1000]},
                    "claimedUntil": {"$literal": at},
                    "nextAttemptAt": {"$literal": outcome.retry_at or at},
                },
            )
        ],
    )


def _delivery(doc: Document) -> Delivery:
    return Delivery(
        key=str(doc["_id"]),
        notice_id=str(doc["noticeId"]),
        version=int(doc["version"]),
        channel=DeliveryChannel(doc["channel"]),
        account_id=str(doc["accountId"]),
        address=str(doc["address"]),
        message_id=str(doc["messageId"]),
        status=DeliveryStatus(doc["status"]),
        attempts=int(doc.get("attempts") or 0),
        issued_at=_aware(doc["issuedAt"]),
        planned_at=_aware(doc["plannedAt"]),
        delivered_at=None if doc.get("deliveredAt") is None else _aware(doc["deliveredAt"]),
        last_error=doc.get("lastError"),
        settled=bool(doc.get("settled")),
        trace_context=dict(doc.get("traceContext") or {}),
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


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
        # W3C trace context of the plan: the channel worker's send continues it
        "traceContext": dict(outbound.trace_context),
    }
