"""SWIFT delivery on real brokers: an operator gives an institutional account
a BIC, and each notice version it holds goes out once as two records on the
SWIFT topic, keyed by the SEME — an MT564 (read back with swift-parser-py)
and a seev.031 (seev.039 for a cancellation) — through a Herald on Apache
Kafka with the dispatcher on. The adapter alone on Apache Kafka and Tansu:
the topic is created when missing, a re-send repeats the same identity, an
unreachable broker is transient, an unrenderable notice permanent."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from adapters.auth.dev_issuer import DevIssuer
from adapters.channels.iso20022 import parse_seev031, parse_seev039
from adapters.channels.swift import SwiftChannel
from delivery.wiring import configured_channels
from devstack.process import free_port
from domain.codes import NoticeKind
from domain.delivery import IssuedNotice, OutboundNotice
from domain.notices import notice_id as notice_id_of
from domain.ports import PermanentChannelError, TransientChannelError
from domain.preferences import DeliveryChannel
from domain.swift import seme_for
from settings import Settings, SettingsError
from tests.delivery.support import MOBILE, PORTAL, depositor, fresh, operator
from tests.delivery.test_channels import NOTICE
from tests.projections.scenario import Portal
from tests.support import Broker, GraphQLClient, RunningHerald, eventually, herald_settings
from tests.swift_support import amount, only, parse_mt564

SENDER = "HRLDRUMM"  # the depository (HERALD_SWIFT_SENDER_BIC)
INSTITUTION = "DEUTDEFFXXX"


@pytest.fixture(scope="module")
async def herald(
    apache_kafka: Any, mongo_uri: str, issuer: DevIssuer
) -> AsyncIterator[RunningHerald]:
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    settings = herald_settings(broker, mongo_uri, issuer, swift_sender_bic=SENDER)
    settings = settings.with_overrides(swift_topic=f"{settings.kafka_topic_prefix}.swift.outbound")
    async with RunningHerald(settings, issuer) as running:
        yield running
    store: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri)
    await store.drop_database(settings.mongo_database)
    await store.close()


@pytest.fixture(scope="module")
async def api(herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with GraphQLClient.of(herald) as client:
        yield client


async def swift_preferences(api: GraphQLClient, account: str, bic: str) -> None:
    """An operator routes `account` to SWIFT at `bic`; wait until the planner can see it."""
    result = await api.data(
        PORTAL,
        {"input": {"accountId": account, "channels": ["SWIFT"], "bic": bic}},
        token=operator(api),
        operation_name="PortalSetPreferences",
    )
    payload = result["setNotificationPreferences"]
    assert payload["preferences"]["bic"] == bic
    await api.data(
        MOBILE,
        {"accountId": account, "consistencyToken": payload["consistencyToken"]},
        token=depositor(api, account),
        operation_name="MobilePreferences",
    )


async def settled_deliveries(herald: RunningHerald, account: str, count: int) -> list[Any]:
    """The account's deliveries once `count` of them reached a final state."""

    async def of_account() -> list[dict[str, Any]]:
        cursor = herald.services.db["deliveries"].find({"accountId": account})
        return sorted([d async for d in cursor], key=lambda d: d["notice"]["version"])

    return await eventually(
        of_account,
        lambda ds: (
            len(ds) == count and all(d["status"] in ("DELIVERED", "DEAD_LETTERED") for d in ds)
        ),
    )


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


async def topic_records(
    bootstrap: str, topic: str, *, at_least: int = 0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on `topic` up to its end offsets now (a delivery is DELIVERED
    only after the broker acknowledged both its records), and at least
    `at_least` of them: Tansu reports the end offset of a partition whose last
    batch holds several records one short."""
    partitions = await partitions_of(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(60):
            while len(records) < at_least or [
                tp for tp in partitions if await consumer.position(tp) < end[tp]
            ]:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records += batch
        return records
    finally:
        await consumer.stop()


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


def of_message(records: list[ConsumerRecord[bytes, bytes]], seme: str) -> dict[str, Any]:
    """The records keyed by `seme`, by `format` header; exactly one of each format."""
    mine = [r for r in records if r.key == seme.encode()]
    formats = Counter(headers(r)["format"] for r in mine)
    assert set(formats.values()) == {1}, formats
    return {headers(r)["format"]: r for r in mine}


async def shown_deliveries(api: GraphQLClient, action: str, account: str) -> list[Any]:
    data = await api.data(
        PORTAL,
        {"id": action, "first": 50},
        token=operator(api),
        operation_name="PortalActionNotices",
    )
    [node] = [
        e["node"]
        for e in data["corporateAction"]["notices"]["edges"]
        if e["node"]["accountId"] == account
    ]
    return list(node["deliveries"])


async def test_an_institution_gets_each_version_once_as_mt564_and_iso20022(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    institution, retail = fresh("INST"), fresh("RETAIL")
    await swift_preferences(api, institution, INSTITUTION)
    portal = Portal(api)
    action = await portal.publish(reference=fresh("RU-SWIFT"))
    await portal.positions({institution: "100", retail: "10"})
    [new] = await settled_deliveries(herald, institution, 1)
    assert (new["channel"], new["status"], new["attempts"]) == ("SWIFT", "DELIVERED", 1)
    notice_id = new["notice"]["noticeId"]
    seme = seme_for(notice_id, 1)
    # GraphQL shows the SEME as the delivery's messageId.
    [shown] = await shown_deliveries(api, action, institution)
    assert (shown["channel"], shown["status"], shown["messageId"]) == ("SWIFT", "DELIVERED", seme)

    topic = herald.settings.swift_topic
    records = await topic_records(herald.settings.kafka_bootstrap, topic)
    retail_notice = notice_id_of(action, retail)  # no SWIFT preference: nothing
    assert not [r for r in records if headers(r)["noticeId"] == retail_notice]
    message = of_message(records, seme)
    assert set(message) == {"MT564", "seev.031.001.14"}
    for record in message.values():
        # (a traced process adds the W3C trace context: not the channel's business)
        assert {
            k: v
            for k, v in headers(record).items()
            if k not in ("format", "traceparent", "tracestate")
        } == {
            "noticeId": notice_id,
            "version": "1",
            "messageId": seme,
        }
    ast, fields = parse_mt564(message["MT564"].value.decode())
    assert ast["block2"]["bic"].startswith(INSTITUTION[:8])
    assert only(fields, "GENL", "23G")["Function"] == "NEWM"
    assert only(fields, "GENL", "20C", "SEME")["Reference"] == seme
    assert only(fields, "ACCTINFO", "97A", "SAFE")["Account"] == institution
    assert amount(only(fields, "ACCTINFO", "93B", "ELIG")["Balance"]) == 100
    net = only(fields, "CASHMOVE", "19B", "NETT")
    assert (net["Currency Code"], amount(net["Amount"])) == ("RUB", Decimal("2897.10"))
    xml = parse_seev031(message["seev.031.001.14"].value.decode()).corp_actn_ntfctn
    assert xml.ntfctn_gnl_inf.ntfctn_id == seme and xml.ntfctn_gnl_inf.ntfctn_tp.value == "NEWM"
    assert xml.acct_dtls.accts_list_and_bal_dtls[0].sfkpg_acct == institution

    # An amendment that changes the entitlement: a REPL naming the NEWM.
    await portal.amend(action, 1, grossRate={"amount": "40.00", "currency": "RUB"})
    _, update = await settled_deliveries(herald, institution, 2)
    assert (update["kind"], update["status"], update["messageId"]) == (
        "UPDATE",
        "DELIVERED",
        seme_for(notice_id, 2),
    )
    records = await topic_records(herald.settings.kafka_bootstrap, topic)
    message = of_message(records, update["messageId"])
    assert set(message) == {"MT564", "seev.031.001.14"}
    _, fields = parse_mt564(message["MT564"].value.decode())
    assert only(fields, "GENL", "23G")["Function"] == "REPL"
    assert only(fields, "LINK", "20C", "PREV")["Reference"] == seme
    assert amount(only(fields, "CASHMOVE", "19B", "NETT")["Amount"]) == Decimal("3480.00")
    xml = parse_seev031(message["seev.031.001.14"].value.decode()).corp_actn_ntfctn
    assert xml.ntfctn_gnl_inf.ntfctn_tp.value == "REPL" and xml.prvs_ntfctn_id.id == seme

    # A cancellation: CANC, with the ISO 20022 cancellation advice.
    await portal.cancel(action, 2)
    *_, cancel = await settled_deliveries(herald, institution, 3)
    assert (cancel["kind"], cancel["status"]) == ("CANCELLATION", "DELIVERED")
    records = await topic_records(herald.settings.kafka_bootstrap, topic)
    message = of_message(records, cancel["messageId"])
    assert set(message) == {"MT564", "seev.039.001.12"}
    _, fields = parse_mt564(message["MT564"].value.decode())
    assert only(fields, "GENL", "23G")["Function"] == "CANC"
    assert only(fields, "LINK", "20C", "PREV")["Reference"] == update["messageId"]
    advice = parse_seev039(message["seev.039.001.12"].value.decode()).corp_actn_cxl_advc
    assert advice.accts_dtls.accts_list[0].sfkpg_acct == institution
    assert cancel["messageId"] in advice.cxl_advc_gnl_inf.cxl_rsn
    # Each version exactly once: three messages, two records each.
    semes = {seme_for(notice_id, v) for v in (1, 2, 3)}
    assert Counter(r.key.decode() for r in records if r.key.decode() in semes) == dict.fromkeys(
        semes, 2
    )


async def test_a_notice_swift_cannot_carry_is_dead_lettered_at_once(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    account = fresh("inst_underscore")  # '_' is outside the SWIFT x character set
    await swift_preferences(api, account, INSTITUTION)
    portal = Portal(api)
    await portal.publish(reference=fresh("RU-SWIFT-DLQ"))
    await portal.positions({account: "5"})
    [dead] = await settled_deliveries(herald, account, 1)
    assert (dead["status"], dead["attempts"]) == ("DEAD_LETTERED", 1)
    assert "account_id" in dead["lastError"]
    records = await topic_records(herald.settings.kafka_bootstrap, herald.settings.swift_topic)
    assert dead["messageId"].encode() not in {r.key for r in records}


# --- the adapter alone, on either broker ------------------------------------------------


def issued(action_id: str) -> IssuedNotice:
    """The e-mail and push suites' notice, as version 1 of `action_id`'s version 1."""
    return replace(
        NOTICE,
        notice_id=fresh("NT"),
        version=1,
        kind=NoticeKind.NEW,
        corporate_action_id=action_id,
        ca_version=1,
        changed_fields=(),
    )


def outbound(channel: SwiftChannel, notice: IssuedNotice, bic: str = INSTITUTION) -> OutboundNotice:
    return OutboundNotice(
        notice, channel.channel, bic, channel.message_id(notice.notice_id, notice.version)
    )


async def test_the_adapter_creates_its_topic_and_a_resend_repeats_the_identity(
    broker: Broker, herald: RunningHerald, api: GraphQLClient
) -> None:
    action = await Portal(api).publish(reference=fresh("RU-SWIFT-ADAPTER"))
    topic = fresh("swift-adapter")  # missing until the first send
    channel = SwiftChannel(
        broker.bootstrap,
        topic,
        SENDER,
        herald.services.events,
        idempotent=broker.idempotent,
        partitions=2,
    )
    try:
        message = outbound(channel, issued(action))
        await channel.send(message)
        await channel.send(message)  # a re-send after a crash: the same key and headers
    finally:
        await channel.close()
    # Created by the channel with its partitions, not auto-created by the broker
    # (which gives 3 partitions here on Apache Kafka, 4 on Tansu).
    assert len(await partitions_of(broker.bootstrap, topic)) == 2
    records = await topic_records(broker.bootstrap, topic, at_least=4)
    assert len(records) == 4 and {r.key for r in records} == {message.message_id.encode()}
    assert Counter(headers(r)["format"] for r in records) == {"MT564": 2, "seev.031.001.14": 2}
    assert {headers(r)["messageId"] for r in records} == {message.message_id}
    mt564 = next(r for r in records if headers(r)["format"] == "MT564")
    _, fields = parse_mt564(mt564.value.decode())
    assert only(fields, "GENL", "20C", "SEME")["Reference"] == message.message_id


async def test_a_later_attempt_publishes_only_what_the_topic_lacks(
    apache_kafka: Any, herald: RunningHerald, api: GraphQLClient
) -> None:
    """A worker died after the broker took a delivery's records (or one of the
    two) and before the log recorded it: the next attempt reads the topic and
    leaves each (SEME, format) there once."""
    bootstrap = apache_kafka.bootstrap_servers
    action = await Portal(api).publish(reference=fresh("RU-SWIFT-AGAIN"))
    topic = fresh("swift-again")
    channel = SwiftChannel(bootstrap, topic, SENDER, herald.services.events, idempotent=True)
    now = datetime.now(UTC) - timedelta(seconds=5)
    whole, half = (outbound(channel, replace(issued(action), issued_at=now)) for _ in range(2))
    try:
        await channel.send(whole)
        await channel.send(replace(whole, attempt=2))  # the first outcome was lost
        # Only the MT564 of the other one went out before the crash.
        swift = await channel.render(half)
        [(mt564, mt564_headers), _] = await channel.records(swift, half)
        producer = await channel._started()
        key = half.message_id.encode()
        await producer.send_and_wait(topic, value=mt564, key=key, headers=mt564_headers)
        await channel.send(replace(half, attempt=3))
    finally:
        await channel.close()
    records = await topic_records(bootstrap, topic, at_least=4)
    published = Counter((r.key, headers(r)["format"]) for r in records)
    assert published == {
        (m.message_id.encode(), f): 1 for m in (whole, half) for f in ("MT564", "seev.031.001.14")
    }


async def test_an_unreachable_broker_is_transient_an_unrenderable_notice_permanent(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    action = await Portal(api).publish(reference=fresh("RU-SWIFT-FAIL"))
    nowhere = f"127.0.0.1:{free_port()}"
    channel = SwiftChannel(
        nowhere, "t", SENDER, herald.services.events, idempotent=False, request_timeout_ms=1000
    )
    with pytest.raises(TransientChannelError):
        await channel.send(outbound(channel, issued(action)))
    # Rendering comes first: these never reach the broker.
    with pytest.raises(PermanentChannelError, match="receiver_bic"):
        await channel.send(outbound(channel, issued(action), bic="NOT-A-BIC"))
    with pytest.raises(PermanentChannelError, match="no version"):
        await channel.send(outbound(channel, issued(fresh("CA-MISSING"))))
    await channel.close()


def test_the_sender_bic_is_checked_at_start_up_and_switches_swift_on(
    herald: RunningHerald,
) -> None:
    with pytest.raises(SettingsError, match="HERALD_SWIFT_SENDER_BIC='HERALD'"):
        Settings.from_env({"HERALD_SWIFT_SENDER_BIC": "HERALD"})
    with pytest.raises(SettingsError, match="HERALD_SWIFT_SENDER_BIC"):
        Settings.from_env({"HERALD_SWIFT_SENDER_BIC": "HERALDRUMMX"})  # "LD" is no country
    on = Settings.from_env({"HERALD_SWIFT_SENDER_BIC": "hrldrumm"})
    assert on.swift_sender_bic == "HRLDRUMM" and on.swift_topic == "herald.swift.outbound"
    events = herald.services.events
    assert DeliveryChannel.SWIFT not in configured_channels(Settings(), events)
    swift = configured_channels(on, events)[DeliveryChannel.SWIFT]
    assert isinstance(swift, SwiftChannel) and swift.topic == "herald.swift.outbound"
    assert swift.message_id("NT1", 2) == seme_for("NT1", 2)
