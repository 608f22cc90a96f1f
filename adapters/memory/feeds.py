"""MemoryNoticeIssueFeed and MemoryCardPublicationFeed: the change-feed ports
in memory. `issue` and `change` stand in for the projectors' writes: each is
delivered to every follower whose selection it matches, as the store's change
stream would. A follow opens with RESET (nothing before it is replayed) and
answers `reopen` with OPENED (nothing is missed across it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Collection
from typing import Generic, TypeVar

from domain.corporate_action import CorporateAction
from domain.ports import FeedChange, FeedSignal, StoredNotice

__all__ = ["MemoryCardPublicationFeed", "MemoryNoticeIssueFeed"]

T = TypeVar("T")


class _Followers(Generic[T]):
    """The queues of the open follows, and the loop each follow runs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queues: set[asyncio.Queue[FeedChange[T]]] = set()

    def offer(self, change: FeedChange[T]) -> None:
        for queue in tuple(self._queues):
            queue.put_nowait(change)

    async def follow(
        self, reopen: asyncio.Event, on_open: Callable[[], None] = lambda: None
    ) -> AsyncGenerator[FeedChange[T], None]:
        queue: asyncio.Queue[FeedChange[T]] = asyncio.Queue()
        self._queues.add(queue)
        try:
            reopen.clear()
            on_open()
            yield FeedChange(FeedSignal.RESET)
            while True:
                get = asyncio.ensure_future(queue.get())
                wake = asyncio.ensure_future(reopen.wait())
                try:
                    await asyncio.wait({get, wake}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in (get, wake):
                        waiter.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await waiter
                if get.done() and not get.cancelled():
                    yield get.result()
                if reopen.is_set():
                    reopen.clear()
                    on_open()
                    yield FeedChange(FeedSignal.OPENED)
        finally:
            self._queues.discard(queue)


class MemoryNoticeIssueFeed:
    def __init__(self, name: str = "notices") -> None:
        self._followers: _Followers[StoredNotice] = _Followers(name)

    @property
    def name(self) -> str:
        return self._followers.name

    def issue(self, notice: StoredNotice) -> None:
        """A notice issued (stored, or stored at a new version)."""
        self._followers.offer(FeedChange(FeedSignal.CHANGED, notice))

    async def follow(
        self, accounts: Callable[[], Collection[str]], reopen: asyncio.Event
    ) -> AsyncGenerator[FeedChange[StoredNotice], None]:
        covered: set[str] = set()

        def on_open() -> None:  # the selection is read at every open, as on the store
            covered.clear()
            covered.update(accounts())

        changes = self._followers.follow(reopen, on_open)
        try:
            async for change in changes:
                item = change.item
                if item is None or str(item.get("accountId")) in covered:
                    yield change
        finally:
            await changes.aclose()


class MemoryCardPublicationFeed:
    def __init__(self, name: str = "cards") -> None:
        self._followers: _Followers[CorporateAction] = _Followers(name)

    @property
    def name(self) -> str:
        return self._followers.name

    def change(self, published: CorporateAction | None) -> None:
        """The public view of a card changed: `published` when a version of it
        was published, None for another change."""
        self._followers.offer(FeedChange(FeedSignal.CHANGED, published))

    def follow(self, reopen: asyncio.Event) -> AsyncGenerator[FeedChange[CorporateAction], None]:
        return self._followers.follow(reopen)
