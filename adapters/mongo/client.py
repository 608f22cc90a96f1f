"""Connecting to the document store."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from domain.ports import StoreUnavailable

Document = dict[str, Any]


def connect(uri: str, *, timeout_ms: int = 5000) -> AsyncMongoClient[Document]:
    """A client with tight timeouts: a store outage surfaces as an error, not a hang.

    Retryable writes stay on (PyMongo's default): a write whose answer is lost
    (a socket timeout, a dropped connection) is sent once more, and the store
    may apply both sends. Every write on the command path is safe to apply
    twice: an event insert dedupes on the event id (adapters.mongo.event_store),
    a positions snapshot on its (snapshot, account) ids, an idempotency claim
    or takeover recognises its own claim id, completion and release are
    conditional on the claim; the sequence counter's `$inc` applied twice only
    leaves a gap. A write that still fails surfaces as StoreUnavailable, and
    the request's key is released with its command id (web/idempotency/),
    so the caller's retry finds what may have been stored.
    """
    return AsyncMongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        # socketTimeoutMS, not timeoutMS: the latter (CSOT) overrides the
        # server-selection bound, so an outage would hang every call for it.
        socketTimeoutMS=max(timeout_ms * 2, 10_000),
        tz_aware=True,
        uuidRepresentation="standard",
    )


async def ping(db: AsyncDatabase[Document]) -> None:
    try:
        await db.command("ping")
    except Exception as exc:  # any failure means "not ready"
        raise StoreUnavailable(str(exc)) from exc
