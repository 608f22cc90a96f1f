"""MongoIdempotencyStore: Idempotency-Key claims and recorded responses.

Two kinds of document in `idempotency`, both inserted, never updated by a
completion:

- the *claim*, one per (caller, key), `_id` the scoped key: the unique `_id`
  makes the first insert win the key. A claim is identified by its `claim`
  id, so a takeover only ever acts on the claim it read (an update of the
  claim document, conditioned on that id).
- the *end* of a claim, `_id` the scoped key and the claim id (`end_id`):
  its recorded response, its release, or the mark of its takeover as
  abandoned. A claim whose command stored its event gets no end at all: the
  event is its record (web/idempotency/middleware.py), and the claim stays in
  flight until it expires (its `expiresAt` a TTL and a lease after the
  claim). The unique `_id` makes the first end of a claim the only one:
  a completion that comes after a takeover's mark records nothing (the
  resumed command answers from its stored events), and a takeover that comes
  after the completion loses. A reader reads the claim, then the end of the
  claim it names (a stale claim's end is never read).

The ends are inserts, so group commit (adapters/mongo/group_commit.py)
batches them with the claims of concurrent requests, with no transaction: an
unordered `insert_many` is one commit on SecantusDB, an update one commit
each. A claim a process abandons mid-request stays in flight until a
takeover (its lease); no other key waits on it.

A release does not delete the claim: its end marks it `released`, keeping its
`command` id, so that the retry of a request whose command did store its
events (a store that failed after the write) finds them instead of running
the command again.

`sweep_expired` (every minute, in each process that runs the relay) deletes
expired claims and ends by one `expiresAt` range. Each operation is safe to
resend (PyMongo retries a write whose answer was lost): a claim that finds
its own `claim` id, or a takeover that finds its own, has succeeded.

A store an older Herald wrote holds its ends inside the claim document
(`state` completed with its `response`, or released): such a claim is read
as it was and has no end document.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
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
# The states an older Herald wrote into the claim document itself.
COMPLETED = "completed"
RELEASED = "released"
# What ends a claim (the `end` field of its end document).
END_RESPONSE = "response"
END_RELEASED = "released"
END_ABANDONED = "abandoned"  # a takeover's mark: the claim reads as in flight


def document_id(caller_key: CallerKey) -> str:
    """Unambiguous for any subject (a JSON pair; no token is null, not a name)."""
    return caller_key.scoped


def end_id(caller_key: CallerKey, claim_id: str) -> str:
    """The `_id` of the document that ends claim `claim_id` of the key. Never
    a claim's: a claim's `_id` is a JSON array, which ends at its `]`."""
    return f"{document_id(caller_key)}|{claim_id}"


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


def _end_document(record: IdempotencyRecord, end: str, expires_at: datetime) -> Document:
    return {
        "_id": end_id(record.caller_key, record.claim_id),
        "end": end,
        "claim": record.claim_id,
        "command": record.command_id,
        "endedAt": datetime.now(UTC),
        "expiresAt": expires_at,
    }


def _response_to_doc(response: StoredResponse) -> Document:
    return {
        "status": response.status,
        "headers": [[name, value] for name, value in response.headers],
        "body": response.body,
    }


def _response_from_doc(stored: Any) -> StoredResponse:
    return StoredResponse(
        status=int(stored["status"]),
        headers=tuple((str(n), str(v)) for n, v in stored["headers"]),
        body=bytes(stored["body"]),
    )


def _from_documents(claim: Document, end: Document | None) -> IdempotencyRecord:
    """The record of `claim` and the document that ended it (None: none did,
    or the claim is an older Herald's, which holds its own end)."""
    record = IdempotencyRecord(
        caller_key=CallerKey(claim.get("subject"), claim["key"]),
        fingerprint=claim["fingerprint"],
        claim_id=claim["claim"],
        claimed_at=_utc(claim["claimedAt"]),
        expires_at=_utc(claim["expiresAt"]),
        # (a record from before command ids: its claim id named its execution)
        command_id=str(claim.get("command") or claim["claim"]),
        released=claim["state"] == RELEASED,
    )
    if claim["state"] == COMPLETED and claim.get("response") is not None:
        return replace(record, response=_response_from_doc(claim["response"]))
    if end is None or end.get("claim") != record.claim_id:
        return record
    if end["end"] == END_RESPONSE:
        return replace(
            record, response=_response_from_doc(end["response"]), expires_at=_utc(end["expiresAt"])
        )
    return replace(record, released=end["end"] == END_RELEASED)


def _claim_states(held: IdempotencyRecord) -> list[str]:
    """The `state` the claim document of `held` may have: in flight, whatever
    ended it since (its end is a document of its own), or the state an older
    Herald wrote."""
    if held.released:
        return [IN_FLIGHT, RELEASED]
    return [IN_FLIGHT] if held.in_flight else [IN_FLIGHT, COMPLETED]


class MongoIdempotencyStore:
    """The claims and the ends (responses, releases, takeover marks) of
    concurrent requests are group-committed (adapters/mongo/group_commit.py):
    in one unordered insert, each document's duplicate key its own."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = IDEMPOTENCY) -> None:
        self._records = db[collection]
        self._inserts = GroupCommit(self._insert)

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
        """Delete the claims and ends whose `expiresAt` is before `now` (what a
        TTL index on it would); how many documents. An index range on
        `expiresAt`: it costs what has expired, not what is kept. (A claim's
        end expires with the response, a little after its claim: an end left
        a moment without its claim is read by no one, its claim id unique.)"""
        async with translated():
            result = await self._records.delete_many({"expiresAt": {"$lt": now}})
        return result.deleted_count

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        doc_id = document_id(record.caller_key)
        # The holder may be released between our failed insert and the read.
        for _ in range(5):
            try:
                await self._inserts.submit({"_id": doc_id, **_in_flight_fields(record)})
                return None
            except DuplicateKey:
                found = await self.get(record.caller_key)
            if found is not None:
                # our own insert, resent by the driver after a lost answer
                return None if found.claim_id == record.claim_id else found
        raise StoreError(f"idempotency key {doc_id} keeps changing hands")

    async def take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        doc_id = document_id(held.caller_key)
        if held.in_flight and not await self._mark_abandoned(held):
            return await self._holds(record)
        # update_one, not find_one_and_update: SecantusDB serves an `_id` filter
        # with more conditions from the `_id` index in an update, but scans
        # the collection (every key of the TTL) for a findAndModify.
        async with translated():
            taken = await self._records.update_one(
                {"_id": doc_id, "claim": held.claim_id, "state": {"$in": _claim_states(held)}},
                {
                    "$set": _in_flight_fields(record),
                    "$unset": {"response": "", "completedAt": ""},
                },
            )
        # lost, unless the driver resent our own update
        return taken.matched_count == 1 or await self._holds(record)

    async def _mark_abandoned(self, held: IdempotencyRecord) -> bool:
        """End the in-flight claim `held` by the mark of its takeover; False
        when its completion or release ended it first. A mark already there
        is another taker's (or ours, resent, or a taker's that stopped before
        its update): the takeover's update then decides between takers."""
        try:
            await self._inserts.submit(_end_document(held, END_ABANDONED, held.expires_at))
            return True
        except DuplicateKey:
            async with translated():
                end = await self._records.find_one({"_id": end_id(held.caller_key, held.claim_id)})
        return end is not None and end["end"] == END_ABANDONED

    async def _holds(self, record: IdempotencyRecord) -> bool:
        async with translated():
            found = await self._records.find_one(
                {"_id": document_id(record.caller_key), "claim": record.claim_id}
            )
        return found is not None

    async def complete(
        self, record: IdempotencyRecord, response: StoredResponse, expires_at: datetime
    ) -> bool:
        end = _end_document(record, END_RESPONSE, expires_at)
        end["response"] = _response_to_doc(response)
        return await self._end(end)

    async def release(self, record: IdempotencyRecord) -> None:
        await self._end(_end_document(record, END_RELEASED, record.expires_at))

    async def _end(self, document: Document) -> bool:
        """Insert the end of a claim; False if the claim had ended (completed,
        released or taken over as abandoned): the first end stands."""
        try:
            await self._inserts.submit(document)
        except DuplicateKey:
            return False
        return True

    async def _insert(self, documents: Sequence[Document]) -> list[Exception | None]:
        return await insert_unordered(self._records, documents)

    async def get(self, caller_key: CallerKey) -> IdempotencyRecord | None:
        """The stored record of a key: its claim, then the end of that claim
        (one read more, only on a repeat of a key or a lookup)."""
        async with translated():
            claim = await self._records.find_one({"_id": document_id(caller_key)})
            if claim is None:
                return None
            end = None
            if claim["state"] == IN_FLIGHT:
                end = await self._records.find_one({"_id": end_id(caller_key, claim["claim"])})
        return _from_documents(claim, end)
