"""The NoticeDeliveryMarks port's contract, run against the in-memory notice
store and MongoDB (the notices projector's store): a notice is marked
delivered once, and only while it is still at the version delivered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest

from adapters.memory.notices import MemoryNoticeStore
from adapters.mongo.client import connect
from adapters.mongo.notice_projection import MongoNoticeProjectionStore
from adapters.mongo.notices import NOTICES, MongoNoticeStore, stored_notice
from domain.delivery import ISSUED_PER_EVENT
from domain.ports import NoticeDeliveryMarks, NoticeReadStore
from tests.builders import T0, notice_doc

Put = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]


@pytest.fixture(params=["memory", "mongo"])
async def stores(
    request: pytest.FixtureRequest, mongo_uri: str
) -> AsyncIterator[tuple[NoticeDeliveryMarks, NoticeReadStore, Put]]:
    if request.param == "memory":
        memory = MemoryNoticeStore()

        async def put_memory(docs: Sequence[dict[str, Any]]) -> None:
            for doc in docs:
                memory.put(stored_notice(doc))  # as the notices projector stores it

        yield memory, memory, put_memory
        return
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    db = client[name]

    async def put_mongo(docs: Sequence[dict[str, Any]]) -> None:
        await db[NOTICES].insert_many([dict(d) for d in docs])

    yield MongoNoticeProjectionStore(db), MongoNoticeStore(db), put_mongo
    await client.drop_database(name)
    await client.close()


async def test_a_notice_is_marked_delivered_once_at_its_version(
    stores: tuple[NoticeDeliveryMarks, NoticeReadStore, Put],
) -> None:
    marks, reads, put = stores
    first = notice_doc("ACC-1", "CA1")
    second = notice_doc("ACC-2", "CA1", version=2, kind="UPDATE")
    await put([first, second])
    at = T0 + timedelta(hours=1)
    # The second notice moved on to version 2: its version 1 is delivered too late.
    assert await marks.mark_delivered([(first["_id"], 1), (second["_id"], 1)], at) == 1
    assert await marks.mark_delivered([(first["_id"], 1)], at + timedelta(1)) == 0
    assert await marks.mark_delivered([], at) == 0
    marked = await reads.get_for_accounts(first["_id"], {"ACC-1"})
    assert marked is not None and marked.delivered_at == at
    unmarked = await reads.get_for_accounts(second["_id"], {"ACC-2"})
    assert unmarked is not None and unmarked.delivered_at is None


async def test_a_batch_larger_than_an_id_slice_marks_each_notice_at_its_version(
    stores: tuple[NoticeDeliveryMarks, NoticeReadStore, Put],
) -> None:
    """More versions than one `$in` slice of the Mongo adapter (it reads and
    updates them a slice at a time): each still marked once, at its version,
    and counted."""
    marks, reads, put = stores
    action = f"CA-{uuid.uuid4().hex[:8]}"
    size = 2 * ISSUED_PER_EVENT + 3
    docs = [
        notice_doc(f"ACC-{n:04d}", action, version=2, kind="UPDATE")
        if n % 3 == 0
        else notice_doc(f"ACC-{n:04d}", action)
        for n in range(size)
    ]
    await put(docs)
    at = T0 + timedelta(hours=1)
    moved_on = sum(1 for n in range(size) if n % 3 == 0)  # at version 2: v1 is too late
    assert await marks.mark_delivered([(d["_id"], 1) for d in docs], at) == size - moved_on
    assert await marks.mark_delivered([(d["_id"], 1) for d in docs], at) == 0
    assert (await reads.by_action([action]))[action][1] == size - moved_on
    last = await reads.get_for_accounts(docs[-1]["_id"], {docs[-1]["accountId"]})
    assert last is not None and last.delivered_at == (None if (size - 1) % 3 == 0 else at)
