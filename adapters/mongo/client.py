"""Connecting to the document store."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from domain.ports import StoreUnavailable

Document = dict[str, Any]


def connect(uri: str, *, timeout_ms: int = 5000) -> AsyncMongoClient[Document]:
    """A client with tight timeouts: a store outage surfaces as an error, not a hang."""
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
