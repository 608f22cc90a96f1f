"""The outbox relay's lease (issue 12): a SIGKILLed relay does not hold the
next one for its TTL, a stalled holder's lease is waited for visibly in
/readyz until it expires, a live holder is not mistaken for a stalled one,
and a holder whose lease runs out mid-batch stops publishing.

Real store (SecantusDB) and broker (Tansu); the fence test alone uses a
publisher that never answers and a lease whose validity it sets.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.auth.dev_issuer import DevIssuer
from adapters.mongo.client import Document, connect
from adapters.mongo.dead_letters import MongoDeadLetterStore
from adapters.mongo.event_store import MongoEventStore
from adapters.mongo.lease import LEASES, MongoLease, holder_alive, this_process
from commands.relay import OutboxRelay
from domain.events import EventEnvelope
from observability.readiness import passed
from services import Services
from tests.builders import seed_announcements
from tests.support import Broker, eventually, herald_settings

RELAY_LEASE = "outbox-relay"
# A TTL no test waits out: a takeover within it is by liveness, not expiry.
LONG_TTL = 120.0

HOLDER = """
import asyncio, sys
from adapters.mongo.client import connect
from adapters.mongo.lease import MongoLease

async def main() -> None:
    lease = MongoLease(connect(sys.argv[1])[sys.argv[2]], "outbox-relay", ttl_seconds=120.0)
    assert await lease.acquire()
    print(lease.holder, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture
async def db(mongo_uri: str) -> AsyncIterator[AsyncDatabase[Document]]:
    client = connect(mongo_uri)
    yield client[f"lease_{uuid.uuid4().hex[:10]}"]
    await client.close()


async def test_the_lease_of_a_sigkilled_relay_process_is_taken_at_once(
    mongo_uri: str, db: AsyncDatabase[Document]
) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, mongo_uri, db.name, stdout=asyncio.subprocess.PIPE
    )
    assert holder.stdout is not None
    held_by = (await asyncio.wait_for(holder.stdout.readline(), 60)).decode().strip()
    next_relay = MongoLease(db, RELAY_LEASE, ttl_seconds=LONG_TTL)
    try:
        # alive: its lease holds, and whose it is shows
        assert holder_alive(held_by)
        assert not await next_relay.acquire()
        assert next_relay.waiting is not None and next_relay.waiting.holder == held_by
    finally:
        holder.kill()
        await holder.wait()
    assert not holder_alive(held_by)
    # long before its 120 s TTL: the holder's process is gone
    assert await next_relay.acquire()
    assert next_relay.valid_for() > 0
    stored = await db[LEASES].find_one({"_id": RELAY_LEASE})
    assert stored is not None and stored["holder"] == next_relay.holder


def test_only_a_gone_process_of_this_host_counts_as_dead() -> None:
    me = this_process("x")
    host, pid, started, _ = me.split("|")
    assert holder_alive(me)
    assert holder_alive(f"{host}|{pid}|{started}|another-instance")
    parent = os.getppid()
    parent_started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    assert holder_alive(f"{host}|{parent}|{parent_started}|x")
    assert not holder_alive(f"{host}|{parent}|not-its-start|x")  # a reused pid
    assert holder_alive(f"another-host/boot/1|{parent}|not-its-start|x")  # cannot tell
    assert holder_alive("an id of another form")


def relay_only(broker: Broker, mongo_uri: str, issuer: DevIssuer) -> Services:
    """A Herald process whose only task is the relay."""
    return Services(
        herald_settings(broker, mongo_uri, issuer, run_projectors=False, run_dispatcher=False)
    )


async def test_readiness_names_a_stalled_holder_until_its_lease_expires(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> None:
    services = relay_only(tansu_broker, mongo_uri, issuer)
    stalled = "relay-on-another-host|1|1|x"
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=15)
    await services.db[LEASES].insert_one(
        {"_id": RELAY_LEASE, "holder": stalled, "expiresAt": expires_at}
    )
    await seed_announcements(services.events, 3)
    await services.start()
    try:
        await eventually(services.ready, lambda _: services.progress is not None)
        checks = await services.ready()
        assert not checks["relay"]
        assert services.progress is not None
        assert services.progress.startswith(
            "relay: waiting for the outbox lease held by relay-on-another-host pid 1 "
            f"until {expires_at.isoformat(timespec='seconds')}"
        )
        assert services.relay.published_total == 0
        # expired: taken over, the outbox drained, ready
        await eventually(services.ready, passed)
        assert services.progress is None
        assert services.relay_lease.waiting is None
        await eventually(services.events.unpublished_count, lambda n: n == 0)
    finally:
        await services.stop()


async def test_a_live_holder_renewing_its_lease_does_not_hold_readiness(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> None:
    services = relay_only(tansu_broker, mongo_uri, issuer)
    other = MongoLease(services.db, RELAY_LEASE, "another-replica|1|1|x", ttl_seconds=3.0)
    assert await other.acquire()

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(other.renew_seconds)
            await other.acquire()

    beating = asyncio.create_task(heartbeat())
    await services.start()
    try:
        await eventually(services.ready, passed)
        assert services.relay_lease.valid_for() == 0  # the other replica publishes
        assert services.relay_lease.waiting is not None
    finally:
        beating.cancel()
        await services.stop()


class NeverAnswers:
    """A broker that takes a batch and never acknowledges it."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def publish(self, events: Sequence[EventEnvelope]) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class RunningOut:
    """A lease held until `run_out()` (its heartbeat could not reach the store)."""

    renew_seconds = 0.05

    def __init__(self) -> None:
        self.valid = True

    async def acquire(self) -> bool:
        return self.valid

    def valid_for(self) -> float:
        return 1.0 if self.valid else 0.0


async def test_a_relay_whose_lease_runs_out_mid_batch_abandons_it_unmarked(
    db: AsyncDatabase[Document],
) -> None:
    events = MongoEventStore(db)
    await events.ensure_indexes()
    await seed_announcements(events, 2)
    publisher, lease = NeverAnswers(), RunningOut()
    relay = OutboxRelay(
        events,
        publisher,  # type: ignore[arg-type]
        MongoDeadLetterStore(db),
        lease=lease,
    )
    batch = asyncio.create_task(relay.run_once())
    await asyncio.sleep(0.3)
    assert not batch.done()  # a valid lease: the batch waits for the broker
    lease.valid = False
    published = await asyncio.wait_for(batch, 10)
    assert published == 0
    assert publisher.cancelled.is_set()
    assert await events.unpublished_count() == 2  # left for the lease's next holder


async def test_a_batch_waiting_on_an_absent_broker_still_measures_the_backlog(
    db: AsyncDatabase[Document],
) -> None:
    """aiokafka keeps a batch sent as the broker went away for the leader it
    knows, unexpired: the publish waits until the broker is back. The outbox
    backlog behind it must still be measured (the outbox alert reads it)."""
    events = MongoEventStore(db)
    await events.ensure_indexes()
    await seed_announcements(events, 1)
    relay = OutboxRelay(
        events,
        NeverAnswers(),  # type: ignore[arg-type]
        MongoDeadLetterStore(db),
        count_backlog=events.unpublished_count,
        backlog_every_seconds=0.1,
        lease=RunningOut(),
    )
    batch = asyncio.create_task(relay.run_once())
    try:
        await eventually(lambda: asyncio.sleep(0.05, relay.backlog), lambda n: n == 1, timeout=10)
        await seed_announcements(events, 5)  # commands accepted while the batch waits
        await eventually(lambda: asyncio.sleep(0.05, relay.backlog), lambda n: n == 6, timeout=10)
        assert not batch.done()
    finally:
        batch.cancel()  # stops, even when a driver swallows the CancelledError mid-count
        await asyncio.wait_for(asyncio.gather(batch, return_exceptions=True), 10)
