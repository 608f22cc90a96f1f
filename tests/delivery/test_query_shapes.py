"""Every query the delivery log sends is one SecantusDB serves from an index.

The embedded store serves a filter from an index only in a few shapes (`_id`
alone; equalities plus at most one range on a compound index's prefix); any
other shape — and any `hint`, which makes it walk the whole index — reads
every delivery ever made, on every sweep, claim or settle. That made the
20 000-notice fan-out of bench/deliveries.py never finish. This runs the log
through a plan → sweep → claim → outcome → settle → cancellation cycle,
records each command it sends (PyMongo command monitoring) and asks the
store's `explain` for the plan of each filter: no collection scan, no hint.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from adapters.mongo.client import Document
from adapters.mongo.deliveries import DELIVERIES, MongoDeliveryLog
from domain.codes import NoticeKind
from domain.delivery import DeliveryStatus, IssuedNotice, OutboundNotice, Outcome, delivery_id
from domain.preferences import DeliveryChannel

AT = datetime(2026, 12, 16, tzinfo=UTC)


class _Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[tuple[str, Mapping[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def recorded(mongo_uri: str) -> AsyncIterator[tuple[Any, _Recorder]]:
    recorder = _Recorder()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        mongo_uri, tz_aware=True, event_listeners=[recorder]
    )
    name = f"herald_shapes_{uuid.uuid4().hex[:10]}"
    yield client[name], recorder
    await client.drop_database(name)
    await client.close()


def _notice(notice_id: str, version: int, kind: NoticeKind) -> IssuedNotice:
    return IssuedNotice(notice_id, version, kind, "ACC-1", "CA1", version, AT, {"reference": "R"})


def _filters(commands: list[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Any, Any]]:
    """(command, filter, hint) of each read or write on the deliveries."""
    found: list[tuple[str, Any, Any]] = []
    for name, command in commands:
        if command.get(name) != DELIVERIES:
            continue
        if name == "find":
            found.append((name, command.get("filter", {}), command.get("hint")))
        elif name == "update":
            found.extend((name, u["q"], u.get("hint")) for u in command["updates"])
        elif name in ("delete", "aggregate", "count", "findAndModify"):
            found.append((name, command, None))  # the log sends none of these
    return found


async def test_the_delivery_log_sends_only_index_served_queries(
    recorded: tuple[Any, _Recorder],
) -> None:
    db, recorder = recorded
    log = MongoDeliveryLog(db)
    await log.ensure_indexes()
    channel = DeliveryChannel.EMAIL
    first = [_notice(f"NT-{i}", 1, NoticeKind.NEW) for i in range(3)]
    outbound = [OutboundNotice(n, channel, "a@example.com", f"m-{n.notice_id}") for n in first]
    recorder.commands.clear()

    assert await log.plan(outbound, AT) == 3
    due = await log.due(channel, AT + timedelta(seconds=1), 10)
    assert sorted(due) == sorted(delivery_id(n.notice_id, 1, channel) for n in first)
    claimed = await log.claim(due, AT + timedelta(seconds=1), timedelta(seconds=60))
    assert len(claimed) == 3
    later = AT + timedelta(seconds=2)
    delivered = await log.record(
        [
            Outcome(due[0], DeliveryStatus.DELIVERED, later),
            Outcome(due[1], DeliveryStatus.DELIVERED, later),
            Outcome(due[2], DeliveryStatus.RETRYING, later, "421", later),
        ]
    )
    assert delivered == {due[0], due[1]}
    assert await log.due(channel, later, 10) == [due[2]]  # the retry, once its time came
    versions = await log.unsettled(10)
    assert len(versions) == 2
    planned = await log.of_notices(versions)
    await log.settle([d.key for ds in planned.values() for d in ds])
    assert await log.unsettled(10) == []
    cancelled = (first[0].notice_id, 2)
    earlier = await log.earlier_channels([cancelled])
    assert earlier == {cancelled: {channel: "a@example.com"}}
    await log.of_version(first[0].notice_id, 1)

    sent = _filters(recorder.commands)
    assert sent, "no query of the delivery log was recorded"
    for name, query, hint in sent:
        assert hint is None, f"{name} {query} walks a whole index ({hint})"
        assert name in ("find", "update"), f"unexpected {name}: {query}"
        explained = await db.command(
            "explain", {"find": DELIVERIES, "filter": query}, verbosity="queryPlanner"
        )
        plan = explained["queryPlanner"]["winningPlan"]
        assert "COLLSCAN" not in repr(plan), f"{name} {query} scans the collection: {plan}"
