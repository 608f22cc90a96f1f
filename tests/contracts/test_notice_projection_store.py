"""The NoticeProjectionStore port's contract, run against the in-memory store
and MongoDB: which actions follow which positions, version-guarded writes of
a range of accounts planned from what is stored, guarded acknowledgements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.memory.notice_projection import MemoryNoticeProjectionStore
from adapters.mongo.client import Document
from adapters.mongo.notice_projection import MongoNoticeProjectionStore
from domain.notices import notice_id
from domain.ports import NoticeProjectionStore, NoticeRecord, StoredIssue
from tests.builders import notice_record

AT = datetime(2026, 12, 16, 9, tzinfo=UTC)
RECORD_DATE = date(2026, 12, 15)
ACC_1 = notice_id("CA1", "ACC-1")


@pytest.fixture(params=["memory", "mongo"])
async def store(
    request: pytest.FixtureRequest, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[NoticeProjectionStore]:
    if request.param == "memory":
        yield MemoryNoticeProjectionStore()
        return
    mongo = MongoNoticeProjectionStore(mongo_db)
    await mongo.ensure_indexes()
    yield mongo


def _notice(account: str, version: int, action: str = "CA1") -> NoticeRecord:
    return notice_record(account, action, version, issued_at=AT)


class Planner:
    """A plan that writes `notices` and remembers what it was shown."""

    def __init__(self, *notices: NoticeRecord) -> None:
        self.notices = notices
        self.seen: dict[str, StoredIssue] = {}

    def __call__(self, stored: Mapping[str, StoredIssue]) -> Sequence[NoticeRecord]:
        self.seen = dict(stored)
        return self.notices


async def test_actions_follow_the_positions_they_subscribed_to(
    store: NoticeProjectionStore,
) -> None:
    await store.subscribe("CA1", [("RU0009029540", RECORD_DATE)])
    await store.subscribe("CA1", [("RU0009029540", RECORD_DATE)])  # a redelivery
    await store.subscribe("CA2", [("RU0009029540", RECORD_DATE), ("RU000A0JXQ28", RECORD_DATE)])
    await store.subscribe("CA3", [])
    assert sorted(await store.subscribers("RU0009029540", "2026-12-15")) == ["CA1", "CA2"]
    assert await store.subscribers("RU000A0JXQ28", "2026-12-15") == ["CA2"]
    assert await store.subscribers("RU0009029540", "2026-12-16") == []


async def test_a_range_is_planned_from_what_is_stored_and_written_under_the_version_guard(
    store: NoticeProjectionStore,
) -> None:
    first = Planner(_notice("ACC-1", 1), _notice("ACC-2", 1), _notice("ACC-9", 1, "CA2"))
    assert await store.reconcile_range("CA1", "ACC-1", "ACC-2", first) == 3
    assert first.seen == {}
    again = Planner(_notice("ACC-1", 1), _notice("ACC-2", 2))
    assert await store.reconcile_range("CA1", "ACC-1", "ACC-2", again) == 1  # only the newer
    assert again.seen == {"ACC-1": StoredIssue(1, "h1"), "ACC-2": StoredIssue(1, "h1")}
    stale = Planner(_notice("ACC-2", 1))
    assert await store.reconcile_range("CA1", "ACC-2", "ACC-2", stale) == 0
    assert stale.seen == {"ACC-2": StoredIssue(2, "h2")}  # the range only, this action only
    read = Planner()
    await store.reconcile_range("CA2", "ACC-0", "ACC-9", read)
    assert read.seen == {"ACC-9": StoredIssue(1, "h1")}


async def test_only_the_stored_unacknowledged_version_is_acknowledged(
    store: NoticeProjectionStore,
) -> None:
    await store.reconcile_range("CA1", "ACC-1", "ACC-1", Planner(_notice("ACC-1", 2)))
    assert not await store.acknowledge(ACC_1, 1, AT)  # a superseded version
    assert not await store.acknowledge(notice_id("CA1", "ACC-9"), 1, AT)  # no such notice
    assert await store.acknowledge(ACC_1, 2, AT)
    later = datetime(2026, 12, 17, tzinfo=UTC)
    assert not await store.acknowledge(ACC_1, 2, later)  # a redelivery keeps the first
    read = Planner()
    await store.reconcile_range("CA1", "ACC-1", "ACC-1", read)
    assert read.seen == {"ACC-1": StoredIssue(2, "h2", AT)}
