"""Notices leave the building, on Apache Kafka with a real SMTP server
(aiosmtpd) and a real push gateway (Starlette on uvicorn) on loopback: each
chosen channel gets each notice version once; an amendment a depositor cannot
see sends nothing, one they can sends one UPDATE per channel; a cancellation
reaches every channel that got the original; no preferences, nothing
outbound; a 400 dead-letters at once and `herald dlq replay` delivers it once
the token is fixed; a 503 spell opens the breaker and everything still arrives
exactly once."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from adapters.auth.dev_issuer import DevIssuer
from cli.deliveries import list_dead_letters
from devstack.mail_sink import MailSink
from devstack.push_sink import PushServer
from tests.delivery.support import MOBILE, PORTAL, depositor, fresh, operator
from tests.projections.scenario import Portal
from tests.support import Broker, GraphQLClient, RunningHerald, eventually, herald_settings


@pytest.fixture
async def sinks() -> AsyncIterator[tuple[MailSink, PushServer]]:
    mail = MailSink()
    mail.start()
    async with PushServer() as push:
        yield mail, push
    mail.stop()


@pytest.fixture
async def herald(
    apache_kafka: Any, mongo_uri: str, issuer: DevIssuer, sinks: tuple[MailSink, PushServer]
) -> AsyncIterator[RunningHerald]:
    mail, push = sinks
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    settings = herald_settings(
        broker,
        mongo_uri,
        issuer,
        smtp_url=mail.url,
        push_url=push.url,
        delivery_retry_seconds=0.2,
        breaker_failures=3,
        breaker_cooldown_seconds=1.0,
    )
    async with RunningHerald(settings, issuer) as running:
        yield running
    store: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri)
    await store.drop_database(settings.mongo_database)
    await store.close()


@pytest.fixture
async def api(herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with GraphQLClient.of(herald) as client:
        yield client


async def prefer(api: GraphQLClient, account: str, **input: Any) -> None:
    result = await api.data(
        MOBILE,
        {"input": {"accountId": account, **input}},
        token=depositor(api, account),
        operation_name="MobileSetPreferences",
    )
    token = result["setNotificationPreferences"]["consistencyToken"]
    await api.data(
        MOBILE,
        {"accountId": account, "consistencyToken": token},
        token=depositor(api, account),
        operation_name="MobilePreferences",
    )


def sent(mail: MailSink, push: PushServer) -> Counter[tuple[str, str]]:
    """(channel, stable identity) → how many times the receiver accepted it."""
    seen: Counter[tuple[str, str]] = Counter()
    for message in mail.messages:
        seen["EMAIL", str(message["Message-ID"])] += 1
    for call in push.accepted():
        seen["PUSH", call.idempotency_key] += 1
    return seen


async def deliveries(herald: RunningHerald) -> list[dict[str, Any]]:
    return [d async for d in herald.services.db["deliveries"].find()]


async def all_settled(herald: RunningHerald, count: int) -> list[dict[str, Any]]:
    return await eventually(
        lambda: deliveries(herald),
        lambda ds: (
            len(ds) == count and all(d["status"] in ("DELIVERED", "DEAD_LETTERED") for d in ds)
        ),
    )


async def test_each_chosen_channel_gets_each_version_once(
    herald: RunningHerald, api: GraphQLClient, sinks: tuple[MailSink, PushServer]
) -> None:
    mail, push = sinks
    both, push_only, none = fresh("both"), fresh("push"), fresh("none")
    await prefer(api, both, channels=["EMAIL", "PUSH"], email="anna@example.com", pushToken="t-a")
    await prefer(api, push_only, channels=["PUSH"], pushToken="t-b")
    portal = Portal(api)
    action = await portal.publish(reference=fresh("RU-DLV"))
    await portal.positions({both: "100", push_only: "10", none: "5"})
    await all_settled(herald, 3)
    # An amendment nobody sees (the announcement date is not on a notice): nothing.
    await portal.amend(action, 1, announcementDate="2026-11-21")
    # One they see (the rate): one UPDATE per channel.
    await portal.amend(action, 2, grossRate={"amount": "40.00", "currency": "RUB"})
    await all_settled(herald, 6)
    await portal.cancel(action, 3)
    final = await all_settled(herald, 9)

    by_version = Counter((d["accountId"], d["kind"], d["channel"]) for d in final)
    assert by_version == Counter(
        {
            (acc, kind, ch): 1
            for acc, chans in ((both, ("EMAIL", "PUSH")), (push_only, ("PUSH",)))
            for kind in ("NEW", "UPDATE", "CANCELLATION")
            for ch in chans
        }
    )
    assert all(d["status"] == "DELIVERED" for d in final)
    assert set(sent(mail, push).values()) == {1}  # the receivers' own records
    assert len(mail.messages) == 3 and len(push.accepted()) == 6
    assert not any(c.body["to"] == none for c in push.calls)
    subjects = [str(m["Subject"]) for m in mail.messages]
    assert all(s.startswith(portal_reference(final)) for s in subjects)
    assert {m["To"] for m in mail.messages} == {"anna@example.com"}
    assert [c.body["kind"] for c in push.calls if c.body["to"] == "t-b"] == [
        "NEW",
        "UPDATE",
        "CANCELLATION",
    ]

    # The operators' view: every notice delivered (none counts once issued).
    async def action_notices() -> dict[str, Any]:
        data = await api.data(
            PORTAL,
            {"id": action, "first": 10},
            token=operator(api),
            operation_name="PortalActionNotices",
        )
        return dict(data["corporateAction"])

    # The last channel's worker marks the notice delivered just after recording its delivery.
    card = await eventually(action_notices, lambda c: c["noticeStats"]["delivered"] == 3)
    assert card["noticeStats"]["total"] == 3
    nodes = {e["node"]["accountId"]: e["node"] for e in card["notices"]["edges"]}
    assert nodes[none]["deliveries"] == []
    assert {d["channel"] for d in nodes[both]["deliveries"]} == {"EMAIL", "PUSH"}
    assert all(d["status"] == "DELIVERED" and d["messageId"] for d in nodes[both]["deliveries"])


def portal_reference(final: list[dict[str, Any]]) -> str:
    return str(final[0]["notice"]["content"]["reference"])


async def test_a_rejected_token_is_dead_lettered_at_once_and_replayed_once_fixed(
    herald: RunningHerald, api: GraphQLClient, sinks: tuple[MailSink, PushServer]
) -> None:
    _, push = sinks
    account = fresh("bad")
    push.answer = lambda body: 400 if body["to"] == "broken" else 200
    await prefer(api, account, channels=["PUSH"], pushToken="broken")
    portal = Portal(api)
    await portal.publish(reference=fresh("RU-DLQ"))
    await portal.positions({account: "7"})
    [dead] = await all_settled(herald, 1)
    assert dead["status"] == "DEAD_LETTERED" and dead["attempts"] == 1
    assert "400" in dead["lastError"]
    listed = await list_dead_letters(herald.services.deliveries, "PUSH")
    assert [d.key for d in listed] == [dead["_id"]]

    await prefer(api, account, channels=["PUSH"], pushToken="fixed")
    listed_by_cli = await herald_cli(herald, "dlq", "list", "--channel", "PUSH")
    assert dead["_id"] in listed_by_cli and "400" in listed_by_cli
    replayed = await herald_cli(herald, "dlq", "replay", "--channel", "PUSH", "--id", dead["_id"])
    assert "requeued 1 deliveries" in replayed
    [done] = await eventually(lambda: deliveries(herald), lambda ds: ds[0]["status"] == "DELIVERED")
    assert [c.body["to"] for c in push.accepted()] == ["fixed"]
    assert done["messageId"] == push.accepted()[0].idempotency_key


async def test_a_503_spell_opens_the_breaker_and_everything_arrives_once(
    herald: RunningHerald, api: GraphQLClient, sinks: tuple[MailSink, PushServer]
) -> None:
    mail, push = sinks
    failing = {"on": True}
    push.answer = lambda body: 503 if failing["on"] else 200
    accounts = [fresh("acc") for _ in range(6)]
    for account in accounts:
        await prefer(
            api,
            account,
            channels=["EMAIL", "PUSH"],
            email=f"{account}@example.com",
            pushToken=account,
        )
    portal = Portal(api)
    await portal.publish(reference=fresh("RU-CB"))
    await portal.positions({a: "1" for a in accounts})
    # E-mail is not held up by the failing push gateway.
    await eventually(lambda: _len(mail), lambda n: n == 6)
    await eventually(lambda: _breaker(herald), lambda state: state == 2.0)
    opened_at = max(c.at for c in push.calls)
    failing["on"] = False
    await all_settled(herald, 12)
    after_open = [c.at for c in push.calls if c.at > opened_at]
    assert min(after_open) - opened_at >= 0.9  # no attempt while open (cool-down 1 s)
    assert Counter(c.idempotency_key for c in push.accepted()) == Counter(
        {k: 1 for k in {c.idempotency_key for c in push.accepted()}}
    )
    assert len(push.accepted()) == 6 and await _breaker(herald) == 0.0


async def herald_cli(herald: RunningHerald, *args: str) -> str:
    """Run `herald …` as an operator would, against the test's store."""
    env = {
        **os.environ,
        "HERALD_MONGO_URI": herald.settings.mongo_uri,
        "HERALD_MONGO_DATABASE": herald.settings.mongo_database,
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("herald")),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    return output.decode()


async def _len(mail: MailSink) -> int:
    return len(mail.messages)


async def _breaker(herald: RunningHerald) -> float:
    from observability.metrics import BREAKER_STATE

    return float(BREAKER_STATE.labels("PUSH")._value.get())
