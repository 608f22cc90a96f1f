"""The NoticeReadStore port's contract, run against the in-memory store and
MongoDB. Notices are stored as the notices projector stores them (with its
per-action counts on MongoDB): the reading side is the subject here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest

from adapters.memory.notices import MemoryNoticeStore
from adapters.mongo.client import connect
from adapters.mongo.notice_projection import STATS_OF, stats_id
from adapters.mongo.notices import NOTICES, MongoNoticeStore, stored_notice
from domain.codes import NoticeKind
from domain.ports import NoticeReadStore, StoredNotice
from tests.builders import T0, notice_doc

Put = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]


@pytest.fixture(params=["memory", "mongo"])
async def store(
    request: pytest.FixtureRequest, mongo_uri: str
) -> AsyncIterator[tuple[NoticeReadStore, Put]]:
    if request.param == "memory":
        memory = MemoryNoticeStore()

        async def put_memory(docs: Sequence[dict[str, Any]]) -> None:
            for doc in docs:
                memory.put(stored_notice(doc))  # as the notices projector stores it

        yield memory, put_memory
        return
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    db = client[name]
    mongo = MongoNoticeStore(db)
    await mongo.ensure_indexes()

    async def put_mongo(docs: Sequence[dict[str, Any]]) -> None:
        await db[NOTICES].insert_many([dict(d) for d in docs])
        for doc in docs:  # the projector's summary per action, moved with each notice
            counts = {
                "total": 1,
                "delivered": int(doc.get("deliveredAt") is not None),
                "acknowledged": int(doc.get("acknowledgedAt") is not None),
            }
            await db[NOTICES].update_one(
                {"_id": stats_id(doc["corporateActionId"])},
                {"$inc": counts, "$set": {STATS_OF: doc["corporateActionId"]}},
                upsert=True,
            )

    yield mongo, put_mongo
    await client.drop_database(name)
    await client.close()


async def test_a_depositor_reads_only_the_notices_of_their_accounts(
    store: tuple[NoticeReadStore, Put],
) -> None:
    notices, put = store
    mine, theirs = notice_doc("ACC-1", "CA1"), notice_doc("ACC-2", "CA1")
    await put([mine, theirs])
    found = await notices.get_for_accounts(mine["_id"], {"ACC-1"})
    assert found is not None and found.notice_id == mine["_id"]
    assert await notices.get_for_accounts(theirs["_id"], {"ACC-1"}) is None
    assert await notices.get_for_accounts(mine["_id"], set()) is None
    page, more = await notices.page_for_accounts({"ACC-1"}, 10, None, False)
    assert [n.notice_id for n in page] == [mine["_id"]] and not more
    assert await notices.count_for_accounts(set(), False) == 0


async def test_pages_newest_first_after_the_cursor_and_unread_only(
    store: tuple[NoticeReadStore, Put],
) -> None:
    notices, put = store
    docs = [
        notice_doc("ACC-1", f"CA{n}", T0 + timedelta(minutes=n), acknowledged_at=None)
        for n in range(4)
    ]
    docs.append(notice_doc("ACC-1", "CA9", T0 - timedelta(minutes=1), acknowledged_at=T0))
    await put(docs)
    newest_first = [d["_id"] for d in [*reversed(docs[:4]), docs[4]]]
    page, more = await notices.page_for_accounts({"ACC-1"}, 2, None, False)
    assert [n.notice_id for n in page] == newest_first[:2] and more
    cursor = (page[-1].issued_at, page[-1].notice_id)
    page, more = await notices.page_for_accounts({"ACC-1"}, 10, cursor, False)
    assert [n.notice_id for n in page] == newest_first[2:] and not more
    assert await notices.count_for_accounts({"ACC-1"}, False) == 5
    assert await notices.count_for_accounts({"ACC-1"}, True) == 4


async def test_operators_count_and_page_the_notices_of_an_action(
    store: tuple[NoticeReadStore, Put],
) -> None:
    notices, put = store
    docs = [
        notice_doc(f"ACC-{n}", "CA1", acknowledged_at=T0 if n == 2 else None) for n in (3, 1, 2)
    ]
    await put([*docs, notice_doc("ACC-1", "CA2")])
    assert await notices.by_action(["CA1", "CA2", "CA3"]) == {"CA1": (3, 0, 1), "CA2": (1, 0, 0)}
    page, more = await notices.page_for_action("CA1", 2, None)
    assert [n.account_id for n in page] == ["ACC-1", "ACC-2"] and more
    page, more = await notices.page_for_action("CA1", 2, "ACC-2")
    assert [n.account_id for n in page] == ["ACC-3"] and not more


async def test_a_notice_reads_back_typed_as_stored(store: tuple[NoticeReadStore, Put]) -> None:
    notices, put = store
    read_at = T0 + timedelta(hours=1)
    doc = notice_doc(
        "ACC-1", "CA1", version=2, kind="UPDATE", changed=("grossRate",), acknowledged_at=read_at
    )
    await put([doc])
    assert await notices.get_for_accounts(doc["_id"], {"ACC-1"}) == StoredNotice(
        notice_id=doc["_id"],
        corporate_action_id="CA1",
        account_id="ACC-1",
        version=2,
        kind=NoticeKind.UPDATE,
        issued_at=T0,  # timezone-aware UTC, as every instant of the port
        content=doc["content"],
        changed_fields=("grossRate",),
        ca_version=2,
        acknowledged_at=read_at,
        delivered_at=None,
    )
