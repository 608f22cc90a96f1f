"""MongoIdempotencyStore: Idempotency-Key claims and recorded responses.

One document per (caller, key) in `idempotency`; the unique `_id` makes the
first insert win the claim. A claim is identified by its `claim` id, so a
takeover, a completion or a release only ever acts on the claim it read.
`sweep_expired` (every minute, in each process that runs the relay) deletes
expired keys.

A release does not delete the document: it marks it `released`, keeping its
`command` id, so that the retry of a request whose command did store its
events (a store that failed after the write) finds them instead of running
the command again. Each operation is safe to resend (PyMongo retries a write
whose answer was lost): a claim that finds its own `claim` id, or a takeover
that finds its own, has succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from adapters.mongo.group_commit import GroupCommit, insert_unordered
from domain.idempotency import CallerKey, IdempotencyRecord, StoredResponse
from domain.ports import DuplicateKey, StoreError

IDEMPOTENCY = "idempotency"
IN_FLIGHT = "in_flight"
COMPLETED = "completed"
RELEASED = "released"


def document_id(caller_key: CallerKey) -> str:
    """Unambiguous for any subject (a JSON pair; no token is null, not a name)."""
    return caller_key.scoped


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _in_flight_fields(record: IdempotencyRecord) -> Document:
    return {
        "subject": record.caller_key.subject,
        "key": record.caller_key.key,
        "state": IN_FLIGHT,
        "fingerprint": record.fingerprint,
        "claim": record.claim_id,
        "command": record.command_id,
        "claimedAt": record.claimed_at,
        "createdAt": record.claimed_at,
        "expiresAt": record.expires_at,
    }


def _response_to_doc(response: StoredResponse) -> Document:
    return {
        "status": response.status,
        "headers": [[name, value] for name, value in response.headers],
        "body": response.body,
    }


def _from_document(doc: Document) -> IdempotencyRecord:
    stored: Any = doc.get("response")
    response = None
    if doc["state"] == COMPLETED and stored is not None:
        response = StoredResponse(
            status=int(stored["status"]),
            headers=tuple((str(n), str(v)) for n, v in stored["headers"]),
            body=bytes(stored["body"]),
        )
    return IdempotencyRecord(
        caller_key=CallerKey(doc.get("subject"), doc["key"]),
        fingerprint=doc["fingerprint"],
        claim_id=doc["claim"],
        claimed_at=_utc(doc["claimedAt"]),
        expires_at=_utc(doc["expiresAt"]),
        response=response,
        # (a record from before command ids: its claim id named its execution)
        command_id=str(doc.get("command") or doc["claim"]),
        released=doc["state"] == RELEASED,
    )


def _state(record: IdempotencyRecord) -> str:
    if record.released:
        return RELEASED
    return IN_FLIGHT if record.in_flight else COMPLETED


class MongoIdempotencyStore:
    """Claims and completions of concurrent requests are group-committed
    (adapters/mongo/group_commit.py): the claims in one unordered insert.
    Completions are not: see `complete`."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = IDEMPOTENCY) -> None:
        self._records = db[collection]
        self._claims = GroupCommit(self._insert_claims)

    async def ensure_indexes(self) -> None:
        """The `expiresAt` index `sweep_expired` reads; a TTL index an older
        Herald made is dropped first. Expiry is Herald's sweep, not a TTL
        index: SecantusDB's TTL monitor decodes every document of the
        collection under the store's global lock each minute (measured: a
        1.7 s stall of every command at 100 000 keys, none expired), and the
        keys are one per command for a day."""
        async with translated():
            async for index in await self._records.list_indexes():
                if "expireAfterSeconds" in index:
                    with suppress(OperationFailure):  # another process dropped it first
                        await self._records.drop_index(index["name"])
            await self._records.create_index([("expiresAt", ASCENDING)])

    async def sweep_expired(self, now: datetime) -> int:
        """Delete the keys whose `expiresAt` is before `now` (what a TTL index
        on it would); how many. An index range on `expiresAt`: it costs what
        has expired, not what is kept."""
        async with translated():
            result = await self._records.delete_many({"expiresAt": {"$lt": now}})
        return result.deleted_count

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        doc_id = document_id(record.caller_key)
        # The holder may be released between our failed insert and the read.
        for _ in range(5):
            try:
                await self._claims.submit({"_id": doc_id, **_in_flight_fields(record)})
                return None
            except DuplicateKey:
                async with translated():
                    held = await self._records.find_one({"_id": doc_id})
            if held is not None:
                found = _from_document(held)
                # our own insert, resent by the driver after a lost answer
                return None if found.claim_id == record.claim_id else found
        raise StoreError(f"idempotency key {doc_id} keeps changing hands")

    async def take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        doc_id = document_id(held.caller_key)
        # update_one, not find_one_and_update: SecantusDB serves an `_id` filter
        # with more conditions from the `_id` index in an update, but scans
        # the collection (every key of the TTL) for a findAndModify.
        async with translated():
            taken = await self._records.update_one(
                {"_id": doc_id, "claim": held.claim_id, "state": _state(held)},
                {
                    "$set": _in_flight_fields(record),
                    "$unset": {"response": "", "completedAt": ""},
                },
            )
            if taken.matched_count:
                return True
            # lost, unless the driver resent our own update
            ours = await self._records.find_one({"_id": doc_id, "claim": record.claim_id})
        return ours is not None

    async def complete(
        self, record: IdempotencyRecord, response: StoredResponse, expires_at: datetime
    ) -> bool:
        fields: Document = {
            "state": COMPLETED,
            "response": _response_to_doc(response),
            "completedAt": datetime.now(UTC),
            "expiresAt": expires_at,
        }
        # Not group-committed: one update per completion, so a key whose
        # document another (e.g. a killed process's open) transaction holds
        # delays only its own answer, never a batch of other keys behind it.
        async with translated():
            result = await self._records.update_one(
                {
                    "_id": document_id(record.caller_key),
                    "claim": record.claim_id,
                    "state": IN_FLIGHT,
                },
                {"$set": fields},
            )
        return result.matched_count == 1

    async def _insert_claims(self, documents: Sequence[Document]) -> list[Exception | None]:
        return await insert_unordered(self._records, documents)

    async def release(self, record: IdempotencyRecord) -> None:
        async with translated():
            await self._records.update_one(
                {
                    "_id": document_id(record.caller_key),
                    "claim": record.claim_id,
                    "state": IN_FLIGHT,
                },
                {"$set": {"state": RELEASED}},
            )

    async def get(self, caller_key: CallerKey) -> IdempotencyRecord | None:
        """The stored record of a key (operations and tests)."""
        async with translated():
            doc = await self._records.find_one({"_id": document_id(caller_key)})
        return None if doc is None else _from_document(doc)
