"""The outbox side of a fan-out: the notice versions a transaction writes are
issued in batched `NoticeIssued` events (domain.delivery.notices_issued_event),
each version in exactly one, on the action's own stream (versions 1, 2, 3 …);
a rerun of the same work issues nothing again; a later version is issued in a
batch of its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from adapters.mongo.client import Document
from adapters.mongo.event_store import EVENTS, MongoEventStore
from adapters.mongo.notice_projection import MongoNoticeProjectionStore
from domain import events as ev
from domain.delivery import ISSUED_PER_EVENT
from domain.notices import notice_id
from domain.ports import NoticeRecord, StoredIssue
from tests.builders import notice_record

ACTION = "CA-BATCHES"
AT = datetime(2026, 12, 20, tzinfo=UTC)
ACCOUNTS = [f"ACC-{n:05d}" for n in range(2 * ISSUED_PER_EVENT + 17)]


def planned(
    accounts: Sequence[str], version: int, stored: Mapping[str, StoredIssue]
) -> Sequence[NoticeRecord]:
    return [
        notice_record(a, ACTION, version, issued_at=AT)
        for a in accounts
        if a not in stored or stored[a].version != version
    ]


async def issued(db: Any) -> list[Document]:
    cursor = db[EVENTS].find({"eventType": ev.NOTICE_ISSUED, "correlationId": ACTION})
    return [doc async for doc in cursor.sort("sequence", 1)]


def versions(events: Sequence[Document]) -> list[tuple[str, int]]:
    return [(n["noticeId"], n["version"]) for e in events for n in e["payload"]["notices"]]


async def test_each_written_version_is_issued_in_exactly_one_batch(db: Any) -> None:
    await MongoEventStore(db).ensure_indexes()
    store = MongoNoticeProjectionStore(db)
    await store.ensure_indexes()
    first, last = ACCOUNTS[0], ACCOUNTS[-1]

    written = await store.reconcile_range(ACTION, first, last, partial(planned, ACCOUNTS, 1))
    assert written == len(ACCOUNTS)
    events = await issued(db)
    # 517 versions: batches of 250, 250 and 17
    assert [len(e["payload"]["notices"]) for e in events] == [250, 250, 17]
    assert sorted(versions(events)) == sorted((notice_id(ACTION, a), 1) for a in ACCOUNTS)
    # one stream per action (one Kafka key: its versions stay in order), versions 1, 2, 3
    assert {e["aggregateId"] for e in events} == {f"{ACTION}:issued"}
    assert [e["version"] for e in events] == [1, 2, 3]
    assert all(e["schemaVersion"] == 2 and not e["published"] for e in events)

    # the same work again (a redelivered batch): nothing written, nothing issued
    again = await store.reconcile_range(ACTION, first, last, partial(planned, ACCOUNTS, 1))
    assert again == 0
    assert len(await issued(db)) == 3

    # a second version of three notices: one more batch, naming only those
    changed = ACCOUNTS[5:8]
    assert await store.reconcile_range(ACTION, first, last, partial(planned, changed, 2)) == 3
    events = await issued(db)
    assert len(events) == 4
    assert sorted(versions(events[-1:])) == sorted((notice_id(ACTION, a), 2) for a in changed)
    assert events[-1]["sequence"] > events[-2]["sequence"]
    assert events[-1]["version"] == 4
