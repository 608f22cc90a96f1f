"""A store that answers `ping` but no write: /readyz must say `"store": "timeout"`.

Seen after a broker SIGKILL during a large notice fan-out on SecantusDB:
every store operation hit the 10 s socket timeout while /readyz said
`"store": true`, since its check was `ping` alone. The stall: a transaction
statement matching `_id: {$in: [thousands of ids]}` (quadratic on
SecantusDB 0.7: 5 000 ids ~30 s) holds its transaction's mutex; the next
transaction command waits for that mutex while holding the server's
transaction registry lock, which every retryable write takes — so every
write waits, while `ping` (no registry) answers at once.

The store check is now a real write (adapters.mongo.client.StoreProbe), and
one the store does not answer in time is named `"timeout"` in /readyz (it
was first `false` like a refused one, and a round cut short answered only
`"checks": false`, naming nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from starlette.applications import Starlette

from adapters.auth.dev_issuer import DevIssuer
from adapters.mongo.client import Document, ping
from devstack.secantus import SecantusServer
from observability.probes import Probes
from observability.readiness import TIMEOUT
from services import Services
from tests.support import Broker, eventually, herald_settings

# Documents matched by the slow statement: quadratic in SecantusDB, several
# seconds on any machine (3 000: ~10 s on the loaded 2-core dev machine).
SLOW_IN = 3000


@pytest.fixture(scope="module")
def failpoint_store() -> Iterator[SecantusServer]:
    """A store of this module's own: failpoints are server-wide."""
    server = SecantusServer(None, sync_on_commit=False, test_commands=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def services(
    tansu_broker: Broker, failpoint_store: SecantusServer, issuer: DevIssuer
) -> AsyncIterator[Services]:
    services = Services(herald_settings(tansu_broker, failpoint_store.uri, issuer))
    yield services
    await services.store_probe.close()  # (never started: no `stop`)
    await services.client.close()


async def _writes_hang(client: AsyncMongoClient[Document], mode: str) -> None:
    await client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": mode,
            "data": {
                "failCommands": ["update", "findAndModify", "insert"],
                "blockConnection": True,
                "blockTimeMS": 4000,
            },
        }
    )


async def test_readiness_names_the_store_timeout_while_writes_hang_and_ping_answers(
    services: Services,
) -> None:
    assert (await services.ready())["store"] is True
    await _writes_hang(services.client, "alwaysOn")
    try:
        await ping(services.db)  # the store answers ping …
        assert (await services.ready())["store"] == TIMEOUT  # … but no write
        # … and /readyz names it (the probe still unanswered: within the 4 s block)
        probes = Probes(services.ready, lambda: services.progress)
        app = Starlette(routes=probes.routes())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald") as http:
            response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"store": TIMEOUT, "kafka": True}
    finally:
        await _writes_hang(services.client, "off")
    await eventually(services.ready, lambda checks: checks["store"] is True, timeout=30)


async def test_a_long_transaction_statement_stalls_every_write_and_readiness_says_so(
    services: Services,
) -> None:
    # the statements' own client, patient (the stall outlasts Herald's socket timeout)
    patient: AsyncMongoClient[Document] = AsyncMongoClient(
        services.settings.mongo_uri, socketTimeoutMS=120_000
    )
    try:
        await _stall(services, patient[services.settings.mongo_database])
    finally:
        await patient.close()


async def _stall(services: Services, db: AsyncDatabase[Document]) -> None:
    await db.slow.insert_many([{"_id": f"n{i:06d}"} for i in range(SLOW_IN)])
    await db.other.insert_one({"_id": "x"})
    assert (await services.ready())["store"] is True

    async def slow_statement() -> None:  # what the fan-out's chunk did
        async with db.client.start_session() as session:
            await session.start_transaction()
            wanted = [f"n{i:06d}" for i in range(SLOW_IN)]
            found = db.slow.find({"_id": {"$in": wanted}}, {"_id": 1}, session=session)
            assert len([doc async for doc in found]) == SLOW_IN
            await session.abort_transaction()

    async def next_transaction() -> None:  # waits for the busy one's mutex
        async with db.client.start_session() as session:
            await session.start_transaction()
            await db.other.update_one({"_id": "x"}, {"$set": {"n": 1}}, session=session)
            await session.commit_transaction()

    slow = asyncio.create_task(slow_statement())
    await asyncio.sleep(0.5)  # the statement is running
    blocked = asyncio.create_task(next_transaction())
    await asyncio.sleep(0.3)  # … and the registry waits for it
    try:
        await ping(services.db)
        checks = await services.ready()
        assert not slow.done(), "the statement ended too soon to stall anything"
        assert checks["store"] == TIMEOUT
    finally:
        await asyncio.gather(slow, blocked)
    await eventually(services.ready, lambda checks: checks["store"] is True, timeout=30)
