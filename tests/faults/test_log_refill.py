"""Issue 12: a crash at any point of a re-fill of a new event log re-fills it
on the next start. The decision is stored before any topic is created
(services.Services.prepare_log), so a start that finds the topics already
there — created by the process that crashed — still re-publishes the record.

Each case: a record whose events were all published into a log now lost (a
fresh topic prefix is a new, empty log); a first start crashes at one point
of preparing the log (the exception stands for the SIGKILL); a second start
must put every recorded event into the new log, and a third, finding the
re-fill done, publishes nothing again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from adapters.auth.dev_issuer import DevIssuer
from adapters.kafka.topics import ensure_topics, topic_for
from adapters.mongo.event_store import MongoEventStore
from adapters.mongo.log_refill import MongoLogRefills
from cli.dev import _refill
from devstack.herald import RunningHerald
from domain import events as ev
from domain.ports import StoreUnavailable
from observability.readiness import ROUND_SECONDS, passed
from services import Services
from settings import Settings
from tests.builders import seed_announcements
from tests.faults.test_outbox_broker_down import read_topic
from tests.support import Broker, eventually, herald_settings

RECORDED = 30


class Crash(Exception):
    """The process dies here."""


def crashing_after(step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def then_crash(*args: Any, **kwargs: Any) -> Any:
        await step(*args, **kwargs)
        raise Crash

    return then_crash


CRASH_POINTS = {
    # the re-fill recorded as needed, no topic created yet
    "after recording the need": lambda mp: mp.setattr(
        MongoLogRefills, "needed", crashing_after(MongoLogRefills.needed)
    ),
    # the topics created (empty), nothing re-queued: "topics exist" on restart
    "after creating the topics": lambda mp: mp.setattr(
        "services.ensure_topics", crashing_after(ensure_topics)
    ),
    # the record re-queued, the re-fill not marked done
    "after re-queueing": lambda mp: mp.setattr(
        Services, "republish_unapplied", crashing_after(Services.republish_unapplied)
    ),
}


async def start(settings: Settings) -> Services:
    services = Services(settings)
    await services.start()
    return services


@pytest.mark.parametrize("crash_point", sorted(CRASH_POINTS))
async def test_a_crash_while_preparing_a_new_log_still_refills_it(
    crash_point: str,
    tansu_broker: Broker,
    mongo_uri: str,
    issuer: DevIssuer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = herald_settings(
        tansu_broker, mongo_uri, issuer, run_projectors=False, run_dispatcher=False
    )
    # the record, published into a log since lost
    first = Services(settings)
    await first.events.ensure_indexes()
    await seed_announcements(first.events, RECORDED)
    recorded = await first.events.read_all(0, RECORDED)
    await first.events.mark_published([e.event_id for e in recorded])

    with monkeypatch.context() as patch:
        CRASH_POINTS[crash_point](patch)
        await first.start()
        await eventually(lambda: _ended(first), lambda ended: ended)
        assert isinstance(first._topics_task.exception(), Crash)
        await first.stop()
    assert first.relay.published_total == 0

    second = await start(settings)
    try:
        await eventually(second.ready, passed)
        await eventually(second.events.unpublished_count, lambda n: n == 0)
        assert second.relay.published_total == RECORDED
        assert await MongoLogRefills(second.db).pending() is None
    finally:
        await second.stop()
    topic = topic_for(settings.kafka_topic_prefix, ev.AGGREGATE_CORPORATE_ACTION)
    in_log = await read_topic(settings.kafka_bootstrap, topic, RECORDED)
    assert {record["eventId"] for record in in_log} == {e.event_id for e in recorded}

    third = await start(settings)  # the log is whole: nothing again
    try:
        await eventually(third.ready, passed)
        assert third.relay.published_total == 0
    finally:
        await third.stop()


async def test_readiness_follows_a_refill_however_slow_its_checks(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen in the chaos test on a loaded machine: after a re-fill, /readyz
    answered 503 for 60 s although every event was published and consumed.
    A round of readiness checks is bounded (ROUND_SECONDS), and the re-fill
    was declared over only inside one, once the count of events still to
    publish answered 0: a round slower than its bound never got there. Here
    that count (a scan on SecantusDB) takes longer than the bound."""
    settings = herald_settings(tansu_broker, mongo_uri, issuer)
    record = Services(settings)
    await record.events.ensure_indexes()
    await seed_announcements(record.events, RECORDED)
    await record.events.mark_published(
        [e.event_id for e in await record.events.read_all(0, RECORDED)]
    )
    await record.client.close()
    counted = MongoEventStore.unpublished_through

    async def slow_count(self: MongoEventStore, sequence: int) -> int:
        await asyncio.sleep(ROUND_SECONDS + 0.5)
        return await counted(self, sequence)

    monkeypatch.setattr(MongoEventStore, "unpublished_through", slow_count)
    herald = RunningHerald(settings, issuer)
    try:
        await herald.start(timeout=30)  # /readyz 200
        assert herald.services.relay.published_total == RECORDED  # the record, re-filled
        assert all(runner.ready for runner in herald.services.runners)
    finally:
        await herald.stop()


async def _ended(services: Services) -> bool:
    return services._topics_task.done()


async def test_a_broker_back_empty_is_not_ready_until_its_refill_is_queued(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen with `herald dev` after a Tansu SIGKILL mid-fan-out: /readyz
    answered 200 for seconds once the broker was back (empty) and before the
    re-fill was queued — the store, busy with the fan-out, was slow to take
    the re-fill's first write. The emptied log holds readiness from the
    moment it is known; and a re-fill the store fails is tried again (the
    supervisor runs it once)."""
    herald = RunningHerald(herald_settings(tansu_broker, mongo_uri, issuer), issuer)
    await herald.start(timeout=30)
    services = herald.services
    try:
        assert passed(await services.ready())
        recorded, release = asyncio.Event(), asyncio.Event()
        needed = services.log_refills.needed
        failures = [StoreUnavailable("the store is busy")]

        async def slow_then_failing() -> None:
            recorded.set()
            await release.wait()
            if failures:
                raise failures.pop()
            await needed()

        monkeypatch.setattr(services.log_refills, "needed", slow_then_failing)
        refill = asyncio.create_task(_refill(services, memory_only=True))  # as the supervisor
        await recorded.wait()
        checks = await services.ready()
        assert checks["kafka"] is True and checks["relay"] is False
        assert services.progress is not None and "came back empty" in services.progress
        release.set()
        await refill  # through the failure: tried again
        assert not failures
        await eventually(services.ready, passed)
    finally:
        await herald.stop()
