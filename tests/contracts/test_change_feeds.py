"""The change-feed ports' contract (NoticeIssueFeed, CardPublicationFeed), run
against the in-memory feeds and MongoDB change streams: a follow opens with a
marker, delivers the issues of the followed accounts only, widens on reopen
without missing anything, and delivers published cards decoded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.memory.event_store import MemoryEventStore
from adapters.memory.feeds import MemoryCardPublicationFeed, MemoryNoticeIssueFeed
from adapters.memory.positions import MemoryPositionSnapshotStore
from adapters.mongo.cards import MongoCardPublicationFeed, MongoCardStore
from adapters.mongo.client import Document
from adapters.mongo.notices import NOTICES, MongoNoticeIssueFeed
from commands.handlers import CommandHandlers
from domain.commands import CommandContext
from domain.corporate_action import CorporateAction
from domain.ports import CardPublicationFeed, FeedChange, FeedSignal, NoticeIssueFeed
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, Principal
from tests.builders import notice_doc
from tests.support import DIVIDEND

T = TypeVar("T")
Write = Callable[[Any], Awaitable[None]]
# a guard against a hang, not a timed assertion
HANG_SECONDS = 30.0


async def _next(changes: AsyncGenerator[FeedChange[T], None]) -> FeedChange[T]:
    async with asyncio.timeout(HANG_SECONDS):
        return await anext(changes)


@pytest.fixture(params=["memory", "mongo"])
async def notices(
    request: pytest.FixtureRequest, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[tuple[NoticeIssueFeed, Write]]:
    if request.param == "memory":
        memory = MemoryNoticeIssueFeed()

        async def issue(notice: dict[str, Any]) -> None:
            memory.issue(notice)

        yield memory, issue
        return

    async def insert(notice: dict[str, Any]) -> None:
        await mongo_db[NOTICES].insert_one(notice)

    yield MongoNoticeIssueFeed(mongo_db), insert


@pytest.fixture(params=["memory", "mongo"])
async def cards(
    request: pytest.FixtureRequest, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[tuple[CardPublicationFeed, Write]]:
    if request.param == "memory":
        memory = MemoryCardPublicationFeed()

        async def change(state: CorporateAction) -> None:
            if state.published is not None:  # as the store's match: the public view only
                memory.change(state)

        yield memory, change
        return
    store = MongoCardStore(mongo_db)

    async def save(state: CorporateAction) -> None:
        assert await store.save(state, state.revision - 1)  # as the card projector applies

    yield MongoCardPublicationFeed(mongo_db), save


async def test_a_follow_delivers_the_issues_of_its_accounts_and_widens_on_reopen(
    notices: tuple[NoticeIssueFeed, Write],
) -> None:
    feed, issue = notices
    followed = {"ACC-1"}
    reopen = asyncio.Event()
    changes = feed.follow(lambda: sorted(followed), reopen)
    try:
        assert (await _next(changes)).signal is FeedSignal.RESET
        await issue(notice_doc("ACC-2", "CA1"))  # not followed: never delivered
        mine = notice_doc("ACC-1", "CA1")
        await issue(mine)
        change = await _next(changes)
        assert change.signal is FeedSignal.CHANGED and change.item is not None
        assert change.item["_id"] == mine["_id"] and change.item["accountId"] == "ACC-1"

        followed.add("ACC-2")
        reopen.set()
        assert (await _next(changes)).signal is FeedSignal.OPENED
        theirs = notice_doc("ACC-2", "CA2")
        await issue(theirs)
        change = await _next(changes)
        assert change.item is not None and change.item["_id"] == theirs["_id"]
    finally:
        await changes.aclose()


async def test_a_published_card_arrives_as_the_card(
    cards: tuple[CardPublicationFeed, Write],
) -> None:
    feed, write = cards
    handlers = CommandHandlers(MemoryEventStore(), MemoryPositionSnapshotStore())
    olga = CommandContext(Principal("olga", frozenset({ROLE_OPERATOR})), "c")
    ivan = CommandContext(Principal("ivan", frozenset({ROLE_APPROVER})), "c")
    payload = {**DIVIDEND, "reference": f"R-{uuid.uuid4().hex[:8]}"}
    pending = (await handlers.announce(payload, olga)).action
    published = (await handlers.approve(pending.id, 1, ivan)).action
    changes = feed.follow(asyncio.Event())
    try:
        assert (await _next(changes)).signal is FeedSignal.RESET
        await write(pending)  # not public: never delivered
        await write(published)
        change = await _next(changes)
        assert change.signal is FeedSignal.CHANGED and change.item == published
    finally:
        await changes.aclose()
