"""A process SIGKILLed inside a transaction leaves it open; the processes that
live on end it at once (adapters/mongo/transactions.py) instead of leaving its
documents locked until the store reaps it 60 s later."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from adapters.mongo.client import Document, connect
from adapters.mongo.transactions import PROCESS_SESSIONS, TransactionSessions
from tests.support import REPO

# The killed process: opens a transaction through TransactionSessions, writes
# the document in it, says so, and waits to be killed.
HOLDER = """
import asyncio, sys
from adapters.mongo.client import connect
from adapters.mongo.transactions import TransactionSessions

async def main() -> None:
    client = connect(sys.argv[1])
    db = client[sys.argv[2]]
    async with TransactionSessions(db).session() as session:
        await session.start_transaction()
        await db.held.update_one({"_id": "x"}, {"$set": {"by": "killed"}}, session=session)
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client = connect(mongo_uri)  # Herald's own client (UUIDs decoded as "standard")
    name = f"herald_orphans_{uuid.uuid4().hex[:10]}"
    await client[name].held.insert_one({"_id": "x", "by": "nobody"})
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def _write_in_transaction(db: AsyncDatabase[Document]) -> None:
    async with db.client.start_session() as session:
        await session.start_transaction()
        await db.held.update_one({"_id": "x"}, {"$set": {"by": "survivor"}}, session=session)
        await session.commit_transaction()


async def test_a_killed_processs_open_transaction_is_ended_by_a_survivor(
    db: AsyncDatabase[Document], mongo_uri: str
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        mongo_uri,
        db.name,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"held"
    child.send_signal(signal.SIGKILL)
    await child.wait()

    # The dead process's transaction still holds the document.
    with pytest.raises(PyMongoError) as held:
        await _write_in_transaction(db)
    assert held.value.has_error_label("TransientTransactionError")
    assert await db[PROCESS_SESSIONS].count_documents({}) == 1

    survivor = TransactionSessions(db)
    assert await survivor.end_the_dead() == 1
    await _write_in_transaction(db)  # no longer held
    assert (await db.held.find_one({"_id": "x"})) == {"_id": "x", "by": "survivor"}
    assert await db[PROCESS_SESSIONS].count_documents({}) == 0
    assert await survivor.end_the_dead() == 0


async def test_a_live_processs_sessions_are_left_alone(db: AsyncDatabase[Document]) -> None:
    mine = TransactionSessions(db)
    async with mine.session() as session:
        await session.start_transaction()
        await db.held.update_one({"_id": "x"}, {"$set": {"by": "me"}}, session=session)
        assert await TransactionSessions(db).end_the_dead() == 0  # this process lives
        await session.commit_transaction()
    assert (await db.held.find_one({"_id": "x"})) == {"_id": "x", "by": "me"}
    assert await db[PROCESS_SESSIONS].count_documents({"_id": mine.holder}) == 1
    await mine.forget()  # a process that stops leaves no record behind
    assert await db[PROCESS_SESSIONS].count_documents({}) == 0
