"""MongoChangeFeed: the changes of one read-model collection, as they happen.

A change stream on one collection (``fullDocument: "updateLookup"``) with the
caller's ``$match`` applied by the store: a subscriber's filter — for
notices, the subscriber's accounts — is a store query like any other read
(invariant 5), not a check on documents already fetched.

The stream is reopened, resuming after the last position seen, whenever the
caller's match changes (its ``reopen`` event is set) and after a connection
error: nothing is missed. When it cannot resume (first open, history lost, the
collection was dropped or renamed over by a rebuild) it opens at "now" and
says so with a RESET: changes may have been missed, and a reader that keeps
derived state (a cache watermark) must drop it.

Checked against SecantusDB 0.7.0b3: a ``$match`` on ``fullDocument.*``,
``operationType`` and ``updateDescription.updatedFields.*``, ``updateLookup``,
``resumeAfter`` with post-batch resume tokens all behave as on mongod, and a
``renameCollection`` over the watched collection ends the stream. MongoDB
serves change streams on replica sets only (a production deployment is one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from adapters.mongo.client import Document
from domain.ports import FeedChange, FeedSignal

__all__ = ["CLOSED", "OPENED", "RESET", "Change", "MongoChangeFeed", "as_feed"]

log = logging.getLogger(__name__)

OPENED = FeedSignal.OPENED.value  # (re)opened by resuming: nothing was missed
RESET = FeedSignal.RESET.value  # opened at "now": changes before this may have been missed
CLOSED = FeedSignal.CLOSED.value  # interrupted: nothing arrives until the next OPENED or RESET
_MARKERS = (OPENED, RESET, CLOSED)

INSERT = "insert"
UPDATE = "update"
REPLACE = "replace"
_DOCUMENT_CHANGES = (INSERT, UPDATE, REPLACE)
# Events that end a stream on one collection; let through whatever the match.
_LIFECYCLE = ("drop", "rename", "dropDatabase", "invalidate")


@dataclass(frozen=True)
class Change:
    """One change of a watched collection, or an OPENED/RESET marker."""

    operation: str
    document: Document | None = None
    # For updates: the top-level fields the update changed (dotted paths cut).
    updated_fields: frozenset[str] = field(default_factory=frozenset)


T = TypeVar("T")


async def as_feed(
    changes: AsyncGenerator[Change, None], item: Callable[[Change], T | None]
) -> AsyncGenerator[FeedChange[T], None]:
    """`changes` as the ports' feed: the markers as they are, a document's
    change as CHANGED carrying `item(change)`."""
    try:
        async for change in changes:
            if change.operation in _MARKERS:
                yield FeedChange(FeedSignal(change.operation))
            else:
                yield FeedChange(FeedSignal.CHANGED, item(change))
    finally:
        await changes.aclose()


def _change(event: Mapping[str, Any]) -> Change:
    description = event.get("updateDescription") or {}
    updated = frozenset(str(name).split(".", 1)[0] for name in description.get("updatedFields", {}))
    return Change(event["operationType"], event.get("fullDocument"), updated)


class MongoChangeFeed:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        collection: str,
        *,
        max_await_ms: int = 250,
        retry_seconds: float = 1.0,
    ) -> None:
        self._collection = db[collection]
        self._max_await_ms = max_await_ms
        self._retry_seconds = retry_seconds

    @property
    def name(self) -> str:
        return self._collection.name

    async def follow(
        self, match: Callable[[], Document], reopen: asyncio.Event
    ) -> AsyncGenerator[Change, None]:
        """Changes of the collection that `match()` selects, for as long as the
        caller iterates. Each (re)open yields OPENED or RESET first, and an
        interruption CLOSED; `match()` is called at every open, and setting
        `reopen` makes the next one."""
        token: Mapping[str, Any] | None = None
        while True:
            reopen.clear()
            pipeline = [{"$match": {"$or": [match(), {"operationType": {"$in": _LIFECYCLE}}]}}]
            try:
                stream = await self._open(pipeline, token)
            except OperationFailure as exc:
                # Resuming: a position the store no longer knows (history lost,
                # a token of a renamed collection) — start again at "now".
                log.warning("cannot watch %s: %s", self.name, exc)
                yield Change(CLOSED)
                if token is None:
                    await asyncio.sleep(self._retry_seconds)
                token = None
                continue
            except PyMongoError as exc:
                log.warning("cannot watch %s (%s); retrying", self.name, exc)
                yield Change(CLOSED)
                await asyncio.sleep(self._retry_seconds)
                continue
            yield Change(OPENED if token is not None else RESET)
            try:
                async with stream:
                    while not reopen.is_set():
                        event = await stream.try_next()
                        token = stream.resume_token
                        if event is None:
                            if not stream.alive:
                                token = None  # invalidated
                                break
                            continue
                        if event["operationType"] in _DOCUMENT_CHANGES:
                            yield _change(event)
                        else:  # dropped or renamed over (a rebuild's switch-over)
                            token = None
                            break
            except OperationFailure as exc:
                log.warning("change stream on %s failed (%s); restarting", self.name, exc)
                token = None
                yield Change(CLOSED)
            except PyMongoError as exc:
                log.warning("change stream on %s interrupted (%s); resuming", self.name, exc)
                yield Change(CLOSED)
                await asyncio.sleep(self._retry_seconds)

    async def _open(
        self, pipeline: list[Document], token: Mapping[str, Any] | None
    ) -> AsyncChangeStream[Document]:
        return await self._collection.watch(
            pipeline,
            full_document="updateLookup",
            resume_after=token,
            max_await_time_ms=self._max_await_ms,
        )
