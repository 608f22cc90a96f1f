"""Change feeds of the read models (subscriptions, the public-cache watermark)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from domain.corporate_action import CorporateAction
from domain.ports.notices import StoredNotice

T_co = TypeVar("T_co", covariant=True)


class FeedSignal(StrEnum):
    """What a change feed says: a marker of its stream's state, or a change."""

    OPENED = "opened"  # (re)opened by resuming: nothing was missed
    RESET = "reset"  # opened at "now": changes before this may have been missed
    CLOSED = "closed"  # interrupted: nothing arrives until the next OPENED or RESET
    CHANGED = "changed"  # a watched record changed


@dataclass(frozen=True)
class FeedChange(Generic[T_co]):
    """One change of a watched read model, or an OPENED / RESET / CLOSED marker.
    `item` (of a CHANGED): what subscribers receive — None for a change that
    matters only as a change (e.g. to a cache watermark)."""

    signal: FeedSignal
    item: T_co | None = None


class NoticeIssueFeed(Protocol):
    """Notices of the followed accounts as they are issued (NEW, UPDATE or
    CANCELLATION: stored, or stored at a new version; an acknowledgement is
    not an issue). The accounts are applied by the store, as in every other
    read (invariant 5)."""

    @property
    def name(self) -> str: ...

    def follow(
        self, accounts: Callable[[], Collection[str]], reopen: asyncio.Event
    ) -> AsyncGenerator[FeedChange[StoredNotice], None]:
        """The issues for as long as the caller iterates. Each (re)open yields
        OPENED or RESET first and an interruption CLOSED; `accounts()` is read
        at every open, and setting `reopen` makes the next one."""
        ...


class CardPublicationFeed(Protocol):
    """Changes of the public view of the cards as they happen: `item` is the
    card when a version of it was published, None for another change of its
    public view (a card stored over by another writer)."""

    @property
    def name(self) -> str: ...

    def follow(self, reopen: asyncio.Event) -> AsyncGenerator[FeedChange[CorporateAction], None]:
        """As NoticeIssueFeed.follow, for every card."""
        ...


class PublicGeneration(Protocol):
    """The publication generation shared caches in front of the app key their
    public answers by (the edge's read cache, edge/lua/herald_edge/cache.lua)."""

    async def advance(self) -> None:
        """Set a generation never used before: no entry cached under an earlier
        one is answered again. Never raises; bounded in time (an unreachable
        store is retried in the background, its outage logged)."""
        ...
