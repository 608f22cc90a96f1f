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
from adapters.mongo.notice_projection import (
    DELIVERED_VERSIONS,
    NOTICES,
    MongoNoticeProjectionStore,
)
from adapters.mongo.notices import MongoNoticeStore
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

    # another worker's store (it knows no head of this stream) continues it,
    # then this one, whose remembered head (4) is behind: 5, then 6
    other = MongoNoticeProjectionStore(db)
    assert await other.reconcile_range(ACTION, first, last, partial(planned, changed, 3)) == 3
    assert await store.reconcile_range(ACTION, first, last, partial(planned, changed, 4)) == 3
    assert [e["version"] for e in await issued(db)] == [1, 2, 3, 4, 5, 6]


async def test_with_no_channel_on_versions_are_stored_delivered_at_issue(db: Any) -> None:
    """No outbound channel on (delivery.wiring.delivered_at_issue): the chunk's
    transaction stores each version delivered at its issue time and counts it
    so, and its `NoticeIssued` says so, for the planner to leave it be; a
    version already recorded delivered keeps its recorded time."""
    await MongoEventStore(db).ensure_indexes()
    store = MongoNoticeProjectionStore(db, delivered_at_issue=True)
    await store.ensure_indexes()
    action, accounts = "CA-AT-ISSUE", ACCOUNTS[:3]

    def plan(version: int, stored: Mapping[str, StoredIssue]) -> Sequence[NoticeRecord]:
        return [
            notice_record(a, action, version, issued_at=AT)
            for a in accounts
            if a not in stored or stored[a].version != version
        ]

    assert await store.reconcile_range(action, accounts[0], accounts[-1], partial(plan, 1)) == 3
    later = datetime(2026, 12, 21, tzinfo=UTC)
    # version 2 of one notice was delivered (recorded) before this issue of it
    await db[DELIVERED_VERSIONS].insert_one(
        {"_id": f"{notice_id(action, accounts[0])}|2", "at": later}
    )
    assert await store.reconcile_range(action, accounts[0], accounts[-1], partial(plan, 2)) == 3
    stored = {n["accountId"]: n async for n in db[NOTICES].find({"corporateActionId": action})}
    assert {a: (n["version"], n["deliveredAt"]) for a, n in stored.items()} == {
        accounts[0]: (2, later),
        accounts[1]: (2, AT),
        accounts[2]: (2, AT),
    }
    assert (await MongoNoticeStore(db).by_action([action]))[action] == (3, 3, 0)
    cursor = db[EVENTS].find({"eventType": ev.NOTICE_ISSUED, "correlationId": action})
    events = [doc async for doc in cursor]
    assert len(events) == 2
    assert all(e["payload"]["deliveredAtIssue"] is True for e in events)
    # the versions named, not rendered: nothing renders them
    assert {frozenset(n) for e in events for n in e["payload"]["notices"]} == {
        frozenset({"noticeId", "version", "accountId", "kind"})
    }
    assert sorted(versions(events)) == sorted(
        (notice_id(action, a), v) for a in accounts for v in (1, 2)
    )
