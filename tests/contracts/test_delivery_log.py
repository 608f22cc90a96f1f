"""The DeliveryLog port's contract, run against the in-memory log and
MongoDB: each (notice, version, channel) is planned once, claimed before its
call (an attempt counted, a lease taken), and its outcome recorded after it;
a lease that runs out makes it due again; dead letters are listed and
requeued; the settler finds what is delivered and not settled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory.deliveries import MemoryDeliveryLog
from adapters.mongo.client import connect
from adapters.mongo.deliveries import MongoDeliveryLog
from domain.codes import NoticeKind
from domain.delivery import (
    DeliveryStatus,
    IssuedNotice,
    OutboundNotice,
    Outcome,
    delivery_id,
)
from domain.ports import DeliveryLog
from domain.preferences import DeliveryChannel

T0 = datetime(2026, 12, 16, 9, tzinfo=UTC)
EMAIL, PUSH = DeliveryChannel.EMAIL, DeliveryChannel.PUSH
LEASE = timedelta(seconds=60)


@pytest.fixture(params=["memory", "mongo"])
async def log(request: pytest.FixtureRequest, mongo_uri: str) -> AsyncIterator[DeliveryLog]:
    if request.param == "memory":
        yield MemoryDeliveryLog()
        return
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    mongo = MongoDeliveryLog(client[name])
    await mongo.ensure_indexes()
    yield mongo
    await client.drop_database(name)
    await client.close()


def _out(
    notice_id: str,
    channel: DeliveryChannel = EMAIL,
    version: int = 1,
    kind: NoticeKind = NoticeKind.NEW,
    address: str = "a@example.com",
) -> OutboundNotice:
    notice = IssuedNotice(
        notice_id, version, kind, "ACC-1", "CA1", version, T0, {"reference": "RU-1"}
    )
    return OutboundNotice(notice, channel, address, f"herald-{notice_id}-v{version}")


def _later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_a_delivery_is_planned_once_and_carries_its_notice(log: DeliveryLog) -> None:
    assert await log.plan([_out("N1"), _out("N1", PUSH, address="tok")], T0) == 2
    assert await log.plan([_out("N1"), _out("N2")], _later(1)) == 1  # a redelivered batch
    [email, push] = await log.of_version("N1", 1)
    assert (email.channel, email.address, email.status, email.attempts) == (
        EMAIL,
        "a@example.com",
        DeliveryStatus.PENDING,
        0,
    )
    assert (push.channel, push.key) == (PUSH, delivery_id("N1", 1, PUSH))
    assert email.planned_at == T0 and email.issued_at == T0 and email.message_id == "herald-N1-v1"
    [claimed] = await log.claim([email.key], _later(2), LEASE)
    assert claimed.notice.content["reference"] == "RU-1"
    assert claimed.outbound == _out("N1")
    assert claimed.delivery.attempts == 1


async def test_a_claim_leases_the_delivery_until_the_lease_runs_out(log: DeliveryLog) -> None:
    await log.plan([_out("N1"), _out("N2"), _out("N3", PUSH)], T0)
    key1, key2 = delivery_id("N1", 1, EMAIL), delivery_id("N2", 1, EMAIL)
    assert sorted(await log.due(EMAIL, _later(1), 10)) == [key1, key2]
    assert len(await log.due(EMAIL, _later(1), 1)) == 1
    assert [c.delivery.key for c in await log.claim([key1], _later(1), LEASE)] == [key1]
    assert await log.claim([key1], _later(2), LEASE) == []  # leased: another worker gets nothing
    assert await log.due(EMAIL, _later(2), 10) == [key2]
    # The worker died: once the lease ran out the delivery is due, a second attempt.
    assert key1 in await log.due(EMAIL, _later(61), 10)
    [again] = await log.claim([key1], _later(61), LEASE)
    assert again.delivery.attempts == 2


async def test_outcomes_deliver_retry_and_dead_letter(log: DeliveryLog) -> None:
    await log.plan([_out("N1"), _out("N2"), _out("N3")], T0)
    keys = [delivery_id(n, 1, EMAIL) for n in ("N1", "N2", "N3")]
    await log.claim(keys, _later(1), LEASE)
    delivered = await log.record(
        [
            Outcome(keys[0], DeliveryStatus.DELIVERED, _later(2)),
            Outcome(keys[1], DeliveryStatus.RETRYING, _later(2), "421 busy", _later(30)),
            Outcome(keys[2], DeliveryStatus.DEAD_LETTERED, _later(2), "550 no such user"),
        ]
    )
    assert delivered == {keys[0]}
    [n1] = await log.of_version("N1", 1)
    assert n1.status is DeliveryStatus.DELIVERED and n1.delivered_at == _later(2)
    [n2] = await log.of_version("N2", 1)
    assert (n2.status, n2.last_error) == (DeliveryStatus.RETRYING, "421 busy")
    assert await log.due(EMAIL, _later(29), 10) == []  # not before its retry time
    assert await log.due(EMAIL, _later(30), 10) == [keys[1]]
    # A delivered one stays delivered, whatever a late outcome says.
    await log.record([Outcome(keys[0], DeliveryStatus.RETRYING, _later(3), "x", _later(4))])
    [n1] = await log.of_version("N1", 1)
    assert n1.status is DeliveryStatus.DELIVERED
    [dead] = await log.dead_letters()
    assert (dead.key, dead.last_error) == (keys[2], "550 no such user")
    assert await log.dead_letters(PUSH) == []


async def test_an_open_breaker_gives_the_attempt_back(log: DeliveryLog) -> None:
    await log.plan([_out("N1")], T0)
    key = delivery_id("N1", 1, EMAIL)
    await log.claim([key], _later(1), LEASE)
    await log.record([Outcome(key, DeliveryStatus.PENDING, _later(1), retry_at=_later(10))])
    assert await log.due(EMAIL, _later(9), 10) == []
    [claimed] = await log.claim([key], _later(10), LEASE)
    assert claimed.delivery.attempts == 1  # the give-back did not count


async def test_a_dead_letter_is_requeued_once_at_the_new_address(log: DeliveryLog) -> None:
    await log.plan([_out("N1", PUSH, address="broken"), _out("N2", PUSH, address="ok")], T0)
    key, other = delivery_id("N1", 1, PUSH), delivery_id("N2", 1, PUSH)
    await log.claim([key], _later(1), LEASE)
    await log.record([Outcome(key, DeliveryStatus.DEAD_LETTERED, _later(2), "400")])
    assert await log.requeue(other, "x", _later(3)) is False  # not a dead letter
    assert await log.requeue(key, "fixed", _later(3)) is True
    assert await log.requeue(key, "fixed", _later(3)) is False
    [requeued] = await log.of_version("N1", 1)
    assert (requeued.status, requeued.attempts, requeued.address) == (
        DeliveryStatus.PENDING,
        0,
        "fixed",
    )
    assert key in await log.due(PUSH, _later(3), 10)


async def test_the_settler_finds_delivered_versions_once(log: DeliveryLog) -> None:
    await log.plan([_out("N1"), _out("N1", PUSH, address="t"), _out("N2")], T0)
    keys = [delivery_id("N1", 1, EMAIL), delivery_id("N1", 1, PUSH), delivery_id("N2", 1, EMAIL)]
    await log.claim(keys, _later(1), LEASE)
    await log.record([Outcome(keys[0], DeliveryStatus.DELIVERED, _later(2))])
    assert await log.unsettled(10) == [("N1", 1)]
    planned = await log.of_notices([("N1", 1), ("N9", 1)])
    assert [d.channel for d in planned["N1", 1]] == [EMAIL, PUSH] and planned["N9", 1] == []
    await log.settle([d.key for d in planned["N1", 1]])
    assert await log.unsettled(10) == []
    [email, _] = await log.of_version("N1", 1)
    assert email.settled


async def test_a_cancellation_finds_the_channels_of_earlier_versions(log: DeliveryLog) -> None:
    await log.plan(
        [
            _out("N1", EMAIL, 1, address="old@example.com"),
            _out("N1", PUSH, 1, address="t1"),
            _out("N1", EMAIL, 2, NoticeKind.UPDATE, address="new@example.com"),
            _out("N2", EMAIL, 1),
        ],
        T0,
    )
    push = delivery_id("N1", 1, PUSH)
    await log.claim([push], _later(1), LEASE)
    await log.record([Outcome(push, DeliveryStatus.DEAD_LETTERED, _later(1), "400")])
    found = await log.earlier_channels([("N1", 3), ("N1", 2), ("N3", 2)])
    assert found == {
        ("N1", 3): {EMAIL: "new@example.com"},  # the latest address; no dead-lettered channel
        ("N1", 2): {EMAIL: "old@example.com"},
        ("N3", 2): {},
    }
    assert await log.earlier_channels([]) == {}
