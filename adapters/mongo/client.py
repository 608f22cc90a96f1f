"""Connecting to the document store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from domain.ports import StoreUnavailable

Document = dict[str, Any]
T = TypeVar("T")

# The most values one `$in` may list. SecantusDB 0.7 matches `$in` in
# quadratic time (each candidate document against every listed value):
# measured on the loaded 2-core dev machine, one `_id: {$in: 5000 ids}` took
# 30 s, the same ids in `$in`s of 100 took 0.6 s in all (250: 1.1 s, 500: 2.9 s).
IN_LIMIT = 200


def in_chunks(values: Sequence[T], limit: int | None = None) -> Iterator[list[T]]:
    """`values` in consecutive lists of at most `limit` (default IN_LIMIT, read
    at each call), for `$in` filters; nothing for no values."""
    limit = IN_LIMIT if limit is None else limit
    for start in range(0, len(values), limit):
        yield list(values[start : start + limit])


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


# What /readyz's store check writes (one small document per process).
PROBES = "probes"
# How long the store may take to answer the readiness write; within the
# readiness round's bound (observability.readiness.ROUND_SECONDS, 2 s).
PROBE_SECONDS = 1.5


class StoreProbe:
    """Does the store answer a real write in time — not only `ping`?

    SecantusDB (0.7) answers `ping` while every write waits: each retryable
    write takes its transaction registry's lock, and any transaction command
    holds that lock while it waits for a transaction that is busy with a
    long statement (an `$in` of thousands of ids is matched in quadratic
    time there: 5 000 ids, ~30 s). So the check is an upsert of this
    process's probe document, answered within `within` seconds.

    At most one probe is in flight: one the store has not answered is left
    to the client's socket timeout, never cancelled and sent again — a
    cancelled PyMongo operation drops its connection, and the store keeps a
    thread blocked on it, so a probe per readiness round would pile up
    blocked connections on a store that is already stuck."""

    def __init__(
        self, db: AsyncDatabase[Document], holder: str, *, within: float = PROBE_SECONDS
    ) -> None:
        self._probes = db[PROBES]
        self._holder = holder
        self._within = within
        self._in_flight: asyncio.Task[None] | None = None

    async def answers(self) -> bool:
        """True when the store acknowledged the probe write within `within` s,
        False when it refused it; raises TimeoutError when it gave no answer
        in time (an earlier probe still unanswered included): /readyz then
        names the store `"timeout"`."""
        probe = self._in_flight
        if probe is None:
            probe = self._in_flight = asyncio.create_task(self._write(), name="store-probe")
        await asyncio.wait({probe}, timeout=self._within)
        if not probe.done():
            raise TimeoutError(f"the store did not answer the probe write within {self._within}s")
        self._in_flight = None
        return not probe.cancelled() and probe.exception() is None

    async def _write(self) -> None:
        await self._probes.update_one(
            {"_id": self._holder}, {"$currentDate": {"at": True}}, upsert=True
        )

    async def close(self) -> None:
        """Stop waiting for an unanswered probe, and drop this process's
        document (best effort: the store may be away)."""
        probe, self._in_flight = self._in_flight, None
        if probe is not None:
            probe.cancel()
            await asyncio.wait({probe})
        with contextlib.suppress(Exception):
            await self._probes.delete_one({"_id": self._holder})
