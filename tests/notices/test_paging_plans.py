"""Every page costs what the first does: the store's query plan (`explain`)
for the page queries of `myNotices` and `corporateActions`, with and without
the keyset cursor, reads an index — never a collection scan.

The queries are the ones the adapters send (captured with PyMongo's command
monitoring, tests/store_commands.py), explained on the store the suites run
on (SecantusDB, which answers `explain` with MongoDB's plan shape)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.cards import MongoCardStore
from adapters.mongo.client import Document, connect
from adapters.mongo.notices import NOTICES, MongoNoticeStore
from domain.ports import CardQuery
from tests.builders import T0, notice_doc
from tests.notices.test_notice_queries import published_action
from tests.store_commands import recording


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client = connect(mongo_uri)  # made after tests.store_commands: its commands are seen
    name = f"herald_plans_{uuid.uuid4().hex[:10]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


def _stages(plan: dict[str, Any]) -> list[str]:
    """Each stage of a winning plan, top down ("IXSCAN <index>" for an index scan)."""
    found = []
    stack = [plan]
    while stack:
        stage = stack.pop()
        name = str(stage.get("stage"))
        found.append(f"{name} {stage['indexName']}" if name == "IXSCAN" else name)
        stack.extend(s for s in [stage.get("inputStage")] if s)
        stack.extend(stage.get("inputStages") or [])
    return found


async def _plan(db: AsyncDatabase[Document], query: Callable[[], Awaitable[object]]) -> list[str]:
    """The winning plan of the one `find` that `query` sends."""
    with recording() as sent:
        await query()
    (find,) = [c.command for c in sent if c.name == "find"]
    command = {k: v for k, v in find.items() if not k.startswith("$") and k != "lsid"}
    explained = await db.command({"explain": command, "verbosity": "queryPlanner"})
    return _stages(explained["queryPlanner"]["winningPlan"])


def _reads_an_index(stages: list[str], index: str) -> bool:
    return f"IXSCAN {index}" in stages and "COLLSCAN" not in stages


@pytest.mark.parametrize("accounts", [1, 10, 100])
async def test_my_notices_pages_read_the_account_index(
    db: AsyncDatabase[Document], accounts: int
) -> None:
    store = MongoNoticeStore(db)
    await store.ensure_indexes()
    mine = [f"ACC-{n:04d}" for n in range(accounts)]
    docs = [
        notice_doc(account, f"CA{n}", T0 + timedelta(seconds=n))
        for n in range(6)
        for account in [*mine, "ACC-OTHER"]
    ]
    await db[NOTICES].insert_many(docs)
    cursor = (T0 + timedelta(seconds=3), docs[len(docs) // 2]["_id"])
    index = "accountId_1_issuedAt_-1__id_-1"

    first = await _plan(db, lambda: store.page_for_accounts(set(mine), 5, None, False))
    later = await _plan(db, lambda: store.page_for_accounts(set(mine), 5, cursor, False))
    unread = await _plan(db, lambda: store.page_for_accounts(set(mine), 5, cursor, True))
    assert _reads_an_index(first, index), first
    assert _reads_an_index(later, index), later  # the cursor condition too
    assert _reads_an_index(unread, index), unread


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (CardQuery(public_only=True), "isPublic_1__id_-1"),  # the website's list
        (CardQuery(public_only=False), "_id_"),  # an operator's, unfiltered
    ],
    ids=["public", "operator"],
)
async def test_corporate_actions_pages_read_an_index(
    db: AsyncDatabase[Document], query: CardQuery, index: str
) -> None:
    store = MongoCardStore(db)
    await store.ensure_indexes()
    ids = []
    for n in range(12):
        state = published_action(f"RU-PLAN-{uuid.uuid4().hex[:6]}-{n}")
        assert await store.save(state, 0)
        ids.append(state.id)

    first = await _plan(db, lambda: store.page(query, 5, None))
    later = await _plan(db, lambda: store.page(query, 5, sorted(ids)[6]))
    assert _reads_an_index(first, index), first
    assert _reads_an_index(later, index), later  # the cursor condition too
