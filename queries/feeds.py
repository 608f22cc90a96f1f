"""Per-process fan-out of read-model changes to GraphQL subscribers.

One change stream per collection and process, however many subscribers:

- `NoticeFanout` serves `noticeIssued`. Its stream's match names the accounts
  of the current subscribers (the store filters, invariant 5); each notice is
  routed by its `accountId` to the queues registered under that account, so
  a subscriber's queue only ever receives notices of its token's accounts.
  When a subscriber brings accounts the stream does not cover yet, the stream
  is reopened with the wider match, resuming where it was (nothing is missed
  for the others); the new subscriber is *live* once that reopen is done.
- `CardFanout` serves `cardPublished` and keeps the public-data watermark of
  the HTTP cache: a counter bumped on every change of the public view of any
  card and on every (re)open of its stream, read for free per request.

A subscriber that does not keep up (its queue is full) is dropped with
`FellBehind` instead of slowing the others down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from adapters.mongo.changes import CLOSED, OPENED, RESET, Change
from adapters.mongo.client import Document

__all__ = ["CardFanout", "ChangeSource", "Expired", "FellBehind", "NoticeFanout"]

log = logging.getLogger(__name__)

# A change stream's cursor close can wait on the store; shutdown does not.
STOP_SECONDS = 5.0
QUEUE_SIZE = 256
LIVE_TIMEOUT_SECONDS = 10.0


class ChangeSource(Protocol):
    """What a fan-out needs of a change feed (`MongoChangeFeed`)."""

    @property
    def name(self) -> str: ...

    def follow(
        self, match: Callable[[], Document], reopen: asyncio.Event
    ) -> AsyncGenerator[Change, None]:
        """Changes selected by `match()`; see `MongoChangeFeed.follow`."""
        ...


class FellBehind(Exception):
    """The subscriber's queue overflowed: it missed changes and is dropped."""


class Expired(Exception):
    """The subscription reached the end of its time (its token expired)."""


@dataclass(eq=False)
class _Subscriber:
    keys: frozenset[str]
    generation: int
    queue: asyncio.Queue[Document | None]
    live: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, document: Document) -> None:
        try:
            self.queue.put_nowait(document)
        except asyncio.QueueFull:
            # Make room for the sentinel: the subscriber ends at its next read.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def documents(self, until: float | None = None) -> AsyncIterator[Document]:
        """The queued documents; Expired at `until` (epoch seconds), if given."""
        while True:
            if until is None:
                document = await self.queue.get()
            else:
                try:
                    async with asyncio.timeout(until - time.time()):
                        document = await self.queue.get()
                except TimeoutError:
                    raise Expired("the subscription's time is up") from None
            if document is None:
                raise FellBehind("the subscriber fell behind and missed changes")
            yield document


class _Watcher:
    """One task following one change source, restarted if it ever fails."""

    def __init__(
        self,
        source: ChangeSource,
        match: Callable[[], Document],
        on_change: Callable[[Change], None],
        reopen: asyncio.Event,
    ) -> None:
        self._source = source
        self._match = match
        self._on_change = on_change
        self._reopen = reopen
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"feed:{self._source.name}")

    async def _run(self) -> None:
        while True:
            changes = self._source.follow(self._match, self._reopen)
            try:
                async for change in changes:
                    self._on_change(change)
            except Exception:  # a bug here must not end every subscription for good
                log.exception("feed of %s failed; restarting", self._source.name)
                self._on_change(Change(CLOSED))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await changes.aclose()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, STOP_SECONDS)
            self._task = None


class NoticeFanout:
    """`noticeIssued`: one stream over the accounts of all subscribers."""

    def __init__(
        self,
        source: ChangeSource,
        match_for: Callable[[Collection[str]], Document],
        *,
        key: str = "accountId",
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._match_for = match_for
        self._key = key
        self._queue_size = queue_size
        self._by_key: dict[str, set[_Subscriber]] = {}
        self._generation = 0  # bumped whenever the set of watched keys grows
        self._covering = -1  # the generation of the match last opened
        self._live = -1  # the generation the open stream covers
        self._reopen = asyncio.Event()
        self._watcher = _Watcher(source, self._match, self._on_change, self._reopen)

    @asynccontextmanager
    async def subscribe(
        self,
        keys: Collection[str],
        *,
        until: float | None = None,
        live_timeout: float = LIVE_TIMEOUT_SECONDS,
    ) -> AsyncIterator[AsyncIterator[Document]]:
        """The documents issued for `keys` from the moment the stream covers
        them (waited for here, up to `live_timeout`) until the caller leaves,
        or until `until` (epoch seconds: then iterating raises Expired)."""
        wanted = frozenset(keys)
        if any(k not in self._by_key for k in wanted):
            self._generation += 1
            self._reopen.set()
        subscriber = _Subscriber(wanted, self._generation, asyncio.Queue(self._queue_size))
        for k in wanted:
            self._by_key.setdefault(k, set()).add(subscriber)
        if subscriber.generation <= self._live:
            subscriber.live.set()
        try:
            if wanted:
                self._watcher.ensure_running()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(subscriber.live.wait(), live_timeout)
            yield subscriber.documents(until)
        finally:
            for k in wanted:
                holders = self._by_key.get(k)
                if holders is not None:
                    holders.discard(subscriber)
                    if not holders:
                        # The stream keeps matching this key until its next
                        # reopen; the routing drops what nobody holds.
                        del self._by_key[k]

    def is_live_for(self, keys: Iterable[str]) -> bool:
        """Whether the open stream delivers the documents of every key now."""
        return all(any(s.live.is_set() for s in self._by_key.get(k, ())) for k in keys)

    def _match(self) -> Document:
        self._covering = self._generation
        return self._match_for(sorted(self._by_key))

    def _on_change(self, change: Change) -> None:
        if change.operation == CLOSED:
            return
        if change.operation in (OPENED, RESET):
            self._live = self._covering
            for holders in self._by_key.values():
                for subscriber in holders:
                    if subscriber.generation <= self._live:
                        subscriber.live.set()
            return
        document = change.document
        if document is None:
            return
        for subscriber in tuple(self._by_key.get(str(document.get(self._key)), ())):
            subscriber.offer(document)

    async def stop(self) -> None:
        await self._watcher.stop()


class CardFanout:
    """`cardPublished` and the public-data watermark: one stream on the cards."""

    def __init__(
        self,
        source: ChangeSource,
        match: Callable[[], Document],
        is_publication: Callable[[Change], bool],
        *,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self._is_publication = is_publication
        self._queue_size = queue_size
        self._subscribers: set[_Subscriber] = set()
        self._version = 0
        self._live = False
        self._watcher = _Watcher(source, match, self._on_change, asyncio.Event())

    async def start(self) -> None:
        self._watcher.ensure_running()

    async def stop(self) -> None:
        self._live = False
        await self._watcher.stop()

    @property
    def watermark(self) -> int | None:
        """Changes whenever the public view of any card may have changed; None
        while the stream is not open (then nothing may be cached)."""
        return self._version if self._live else None

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[Document]]:
        """Every card published from now on, as its stored document."""
        subscriber = _Subscriber(frozenset(), 0, asyncio.Queue(self._queue_size))
        self._subscribers.add(subscriber)
        self._watcher.ensure_running()
        try:
            yield subscriber.documents()
        finally:
            self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _on_change(self, change: Change) -> None:
        self._version += 1
        if change.operation == CLOSED:
            self._live = False  # a publication now would not reach us: cache nothing
            return
        if change.operation in (OPENED, RESET):
            self._live = True
            return
        if change.document is not None and self._is_publication(change):
            for subscriber in tuple(self._subscribers):
                subscriber.offer(change.document)
