"""Transactions a killed process left open, ended by the processes that live on.

A process SIGKILLed inside a MongoDB transaction (a notice chunk, a
multi-event append) leaves it open: closing the connection does not abort
it, and every document it wrote stays locked until the store reaps it after
`transactionLifetimeLimitSeconds` (60 s on mongod and SecantusDB). Until then
the survivor taking over the same action's fan-out meets write conflicts and
waits — a minute without a notice, for nothing.

So each process records, once per pooled session, the logical session id
(lsid) it runs transactions on, under its holder id (adapters.mongo.lease:
host, boot, pid namespace, pid, start time). `end_the_dead` — run at start and
every few seconds beside the relay — finds the records of processes of this
host that have ended and sends `killSessions` for their lsids, which aborts
their open transactions at once (MongoDB's documented way to end another
client's sessions), then forgets them. A process on another host is never
judged dead here (holder_alive): its transactions still wait for the store's
limit, which deploy/compose.yml sets to 10 s.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from bson import Binary
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from adapters.mongo.client import Document
from adapters.mongo.errors import translated
from adapters.mongo.lease import holder_alive, this_process
from domain.ports import DuplicateKey

PROCESS_SESSIONS = "process_sessions"
# How often the processes that live on look for the sessions of ended ones.
REAP_SECONDS = 2.0


class TransactionSessions:
    """Sessions for transactions, each recorded under this process's holder id."""

    def __init__(self, db: AsyncDatabase[Document], holder: str | None = None) -> None:
        self._db = db
        self._records = db[PROCESS_SESSIONS]
        self.holder = holder or this_process(uuid.uuid4().hex[:8])
        self._recorded: set[bytes] = set()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncClientSession]:
        """A session to run one transaction on; its lsid is recorded first
        (one write the first time a pooled session is used)."""
        async with self._db.client.start_session() as session:
            lsid = session.session_id["id"]
            if bytes(lsid) not in self._recorded:
                await self._record(lsid)
                self._recorded.add(bytes(lsid))
            yield session

    async def run(
        self,
        attempt: Callable[[AsyncClientSession], Awaitable[None]],
        *,
        duplicate_retries: int = 0,
    ) -> None:
        """Run `attempt(session)` in one transaction. PyMongo retries transient
        conflicts; a DuplicateKey (a concurrent writer inserted the same
        document first) starts it over, up to `duplicate_retries` times: the
        next attempt reads that document. Raises StoreError (DuplicateKey
        past the retries)."""
        for remaining in range(duplicate_retries, -1, -1):
            try:
                async with translated(), self.session() as session:
                    await session.with_transaction(attempt)
                return
            except DuplicateKey:
                if remaining == 0:
                    raise

    async def _record(self, lsid: object) -> None:
        for attempt in range(2):  # two first upserts of this process may race
            try:
                async with translated():
                    await self._records.update_one(
                        {"_id": self.holder}, {"$addToSet": {"lsids": lsid}}, upsert=True
                    )
                return
            except DuplicateKey:
                if attempt:
                    raise

    async def forget(self) -> None:
        """Drop this process's record (its transactions are over: it stops)."""
        async with translated():
            await self._records.delete_one({"_id": self.holder})
        self._recorded.clear()

    async def end_the_dead(self) -> int:
        """Abort the open transactions of every ended process of this host
        that recorded its sessions, and forget it. Returns how many processes."""
        ended = 0
        async with translated():
            async for record in self._records.find({}):
                if holder_alive(str(record["_id"])):
                    continue
                # (a client decoding UUIDs as "standard" reads them back as
                # uuid.UUID, which `command` does not encode: send them as BSON)
                lsids = [
                    Binary.from_uuid(lsid) if isinstance(lsid, uuid.UUID) else lsid
                    for lsid in record.get("lsids") or []
                ]
                if lsids:
                    await self._db.client.admin.command(
                        "killSessions", [{"id": lsid} for lsid in lsids]
                    )
                await self._records.delete_one({"_id": record["_id"]})
                ended += 1
        return ended
