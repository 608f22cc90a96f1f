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
  card and on every (re)open of its stream, read for free per request. With a
  `PublicGeneration` (the edge's read cache), the shared generation is
  advanced first: a shared cache never answers older than this process would.

A subscriber that does not keep up (its queue is full) is dropped with
`FellBehind` instead of slowing the others down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from domain.corporate_action import CorporateAction
from domain.ports import (
    CardPublicationFeed,
    FeedChange,
    FeedSignal,
    NoticeIssueFeed,
    PublicGeneration,
    StoredNotice,
)

__all__ = ["CardFanout", "Expired", "FellBehind", "NoticeFanout"]

log = logging.getLogger(__name__)

# A change stream's cursor close can wait on the store; shutdown does not.
STOP_SECONDS = 5.0
QUEUE_SIZE = 256
LIVE_TIMEOUT_SECONDS = 10.0

T = TypeVar("T")


class FellBehind(Exception):
    """The subscriber's queue overflowed: it missed changes and is dropped."""


class Expired(Exception):
    """The subscription reached the end of its time (its token expired)."""


@dataclass(eq=False)
class _Subscriber(Generic[T]):
    keys: frozenset[str]
    generation: int
    queue: asyncio.Queue[T | None]
    live: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, item: T) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # Make room for the sentinel: the subscriber ends at its next read.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)

    async def items(self, until: float | None = None) -> AsyncIterator[T]:
        """The queued items; Expired at `until` (epoch seconds), if given."""
        while True:
            if until is None:
                item = await self.queue.get()
            else:
                try:
                    async with asyncio.timeout(until - time.time()):
                        item = await self.queue.get()
                except TimeoutError:
                    raise Expired("the subscription's time is up") from None
            if item is None:
                raise FellBehind("the subscriber fell behind and missed changes")
            yield item


class _Watcher(Generic[T]):
    """One task following one change feed, restarted if it ever fails."""

    def __init__(
        self,
        name: str,
        follow: Callable[[], AsyncGenerator[FeedChange[T], None]],
        on_change: Callable[[FeedChange[T]], Awaitable[None] | None],
    ) -> None:
        self._name = name
        self._follow = follow
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"feed:{self._name}")

    async def _run(self) -> None:
        while True:
            changes = self._follow()
            try:
                async for change in changes:
                    await self._handle(change)
            except Exception:  # a bug here must not end every subscription for good
                log.exception("feed of %s failed; restarting", self._name)
                await self._handle(FeedChange(FeedSignal.CLOSED))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await changes.aclose()

    async def _handle(self, change: FeedChange[T]) -> None:
        pending = self._on_change(change)
        if pending is not None:
            await pending

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._task, STOP_SECONDS)
            self._task = None


class NoticeFanout:
    """`noticeIssued`: one stream over the accounts of all subscribers."""

    def __init__(self, feed: NoticeIssueFeed, *, queue_size: int = QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._by_key: dict[str, set[_Subscriber[StoredNotice]]] = {}
        self._generation = 0  # bumped whenever the set of watched keys grows
        self._covering = -1  # the generation of the accounts last opened
        self._live = -1  # the generation the open stream covers
        self._reopen = asyncio.Event()
        self._watcher = _Watcher(
            feed.name, lambda: feed.follow(self._accounts, self._reopen), self._on_change
        )

    @asynccontextmanager
    async def subscribe(
        self,
        keys: Collection[str],
        *,
        until: float | None = None,
        live_timeout: float = LIVE_TIMEOUT_SECONDS,
    ) -> AsyncIterator[AsyncIterator[StoredNotice]]:
        """The notices issued for `keys` from the moment the stream covers
        them (waited for here, up to `live_timeout`) until the caller leaves,
        or until `until` (epoch seconds: then iterating raises Expired)."""
        wanted = frozenset(keys)
        if any(k not in self._by_key for k in wanted):
            self._generation += 1
            self._reopen.set()
        subscriber: _Subscriber[StoredNotice] = _Subscriber(
            wanted, self._generation, asyncio.Queue(self._queue_size)
        )
        for k in wanted:
            self._by_key.setdefault(k, set()).add(subscriber)
        if subscriber.generation <= self._live:
            subscriber.live.set()
        try:
            if wanted:
                self._watcher.ensure_running()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(subscriber.live.wait(), live_timeout)
            yield subscriber.items(until)
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

    def _accounts(self) -> list[str]:
        self._covering = self._generation
        return sorted(self._by_key)

    def _on_change(self, change: FeedChange[StoredNotice]) -> None:
        if change.signal is FeedSignal.CLOSED:
            return
        if change.signal in (FeedSignal.OPENED, FeedSignal.RESET):
            self._live = self._covering
            for holders in self._by_key.values():
                for subscriber in holders:
                    if subscriber.generation <= self._live:
                        subscriber.live.set()
            return
        notice = change.item
        if notice is None:
            return
        for subscriber in tuple(self._by_key.get(notice.account_id, ())):
            subscriber.offer(notice)

    async def stop(self) -> None:
        await self._watcher.stop()


class CardFanout:
    """`cardPublished` and the public-data watermark: one stream on the cards."""

    def __init__(
        self,
        feed: CardPublicationFeed,
        *,
        queue_size: int = QUEUE_SIZE,
        generation: PublicGeneration | None = None,
    ) -> None:
        self._queue_size = queue_size
        self._generation = generation
        self._subscribers: set[_Subscriber[CorporateAction]] = set()
        self._version = 0
        self._live = False
        reopen = asyncio.Event()  # never set: the cards' stream watches every card
        self._watcher = _Watcher(feed.name, lambda: feed.follow(reopen), self._on_change)

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
    async def subscribe(self) -> AsyncIterator[AsyncIterator[CorporateAction]]:
        """Every card published from now on, as stored (its folded state)."""
        subscriber: _Subscriber[CorporateAction] = _Subscriber(
            frozenset(), 0, asyncio.Queue(self._queue_size)
        )
        self._subscribers.add(subscriber)
        self._watcher.ensure_running()
        try:
            yield subscriber.items()
        finally:
            self._subscribers.discard(subscriber)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def _on_change(self, change: FeedChange[CorporateAction]) -> None:
        if change.signal is FeedSignal.CLOSED:
            self._live = False  # a publication now would not reach us: cache nothing
        if self._generation is not None:
            # The shared generation moves before this process's watermark:
            # once it answers the new card, no shared cache answers an entry
            # made before. Meanwhile it answers from the store, not from its
            # own cache, so an entry made under the new generation is new too.
            live, self._live = self._live, False
            try:
                await self._generation.advance()
            finally:
                self._live = live
        self._version += 1
        if change.signal is FeedSignal.CLOSED:
            return
        if change.signal in (FeedSignal.OPENED, FeedSignal.RESET):
            self._live = True
            return
        if change.item is not None:  # a version was published
            for subscriber in tuple(self._subscribers):
                subscriber.offer(change.item)
