"""Issue 11, kind 11: a poison record neither stalls a projection nor vanishes.

Each suite runs one Herald whose topics have one partition, so the poison and
the later events of other aggregates share it: the later ones must still
project, and the poison must be parked — in the `dead_letters` store, on the
`<prefix>.deadletter.<projection>` topic, in the metric — where `herald dlq`
lists and replays it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY

from adapters.auth.dev_issuer import DevIssuer
from adapters.kafka.dead_letters import dead_letter_topic
from adapters.kafka.topics import topic_for
from adapters.mongo.positions import POSITION_PAGES
from cli.dlq import describe, list_letters, replay_letters
from commands.ids import new_event_id
from domain import events as ev
from domain.dead_letters import DeadLetterStatus
from domain.history import decode_terms
from domain.positions import Position, PositionsSnapshot, positions_aggregate_id
from domain.validation import InvalidInput, parse_terms, terms_to_payload
from services import Services
from tests.projections.scenario import DIVIDEND, PORTAL, Portal, notices_of
from tests.support import (
    HERALD,
    Broker,
    GraphQLClient,
    RunningHerald,
    eventually,
    herald_settings,
    worker_env,
)

ISIN = "RU0009029540"


@pytest.fixture
async def one_partition(
    broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> AsyncIterator[RunningHerald]:
    settings = herald_settings(broker, mongo_uri, issuer, kafka_partitions=1)
    async with RunningHerald(settings, issuer) as running:
        yield running


def dead_letters_counted(source: str, kind: str) -> float:
    labels = {"source": source, "kind": kind}
    return REGISTRY.get_sample_value("herald_dead_letters_total", labels) or 0.0


async def produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def read_records(bootstrap: str, topic: str, expected: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[Any] = []
    try:
        for _ in range(60):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found += messages
            if len(found) >= expected:
                break
    finally:
        await consumer.stop()
    return found


async def record_unchecked(
    services: Services, as_of: str, holdings: dict[str, str]
) -> ev.EventEnvelope:
    """A positions snapshot as the event record may hold it, past any input
    check of today (the command path's bounds are not the subject here)."""
    snapshot = PositionsSnapshot(
        ISIN,
        date.fromisoformat(as_of),
        tuple(Position(a, Decimal(q), Decimal("13")) for a, q in holdings.items()),
    )
    snapshot_id = new_event_id()
    await services.positions.save(snapshot_id, snapshot)
    aggregate_id = positions_aggregate_id(ISIN, as_of)
    version = len(await services.events.load(aggregate_id)) + 1
    payload = {"isin": ISIN, "asOf": as_of, "snapshotId": snapshot_id, "accounts": len(holdings)}
    return await append_unchecked(
        services, ev.AGGREGATE_POSITIONS, aggregate_id, version, ev.POSITIONS_RECORDED, payload
    )


async def append_unchecked(
    services: Services,
    aggregate_type: str,
    aggregate_id: str,
    version: int,
    event_name: str,
    payload: dict[str, Any],
) -> ev.EventEnvelope:
    envelope = ev.EventEnvelope(
        event_id=new_event_id(),
        event_name=event_name,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        version=version,
        occurred_at=datetime.now(UTC),
        actor="history",
        correlation_id="poison",
        payload=payload,
    )
    [stored] = await services.events.append([envelope])
    services.relay.notify()
    return stored


async def announce_with_token(portal: Portal, **changes: Any) -> tuple[str, str]:
    data = await portal.client.data(
        PORTAL,
        {"input": {**DIVIDEND, **changes}},
        token=portal.operator,
        operation_name="PortalAnnounce",
    )
    answer = data["announceCorporateAction"]
    return answer["corporateAction"]["id"], answer["consistencyToken"]


async def test_poison_records_on_the_cards_topic_are_parked_and_later_cards_project(
    one_partition: RunningHerald,
) -> None:
    herald = one_partition
    prefix, bootstrap = herald.settings.kafka_topic_prefix, herald.settings.kafka_bootstrap
    topic = topic_for(prefix, ev.AGGREGATE_CORPORATE_ACTION)
    source = "projection:cards"
    counted = dead_letters_counted(source, "undecodable")
    # A record that does not decode, and one that decodes but cannot be applied
    # (a stream cannot start with an approval).
    await produce(bootstrap, topic, b"junk", b"{not json")
    orphan = {
        **ev.to_json(
            ev.EventEnvelope(
                event_id="orphan-approval",
                event_name=ev.PUBLICATION_APPROVED,
                aggregate_type=ev.AGGREGATE_CORPORATE_ACTION,
                aggregate_id="ca-orphan",
                version=1,
                occurred_at=datetime.now(UTC),
                actor="ivan",
                correlation_id="poison",
                payload={"caVersion": 1},
            )
        )
    }
    await produce(bootstrap, topic, b"ca-orphan", json.dumps(orphan).encode())

    async with GraphQLClient.of(herald) as client:
        portal = Portal(client)
        action_id, token = await announce_with_token(portal, reference="RU-AFTER-POISON")
        card = await client.data(
            PORTAL,
            {"id": action_id, "consistencyToken": token},
            token=portal.operator,
            operation_name="PortalCard",
        )
        assert card["corporateAction"]["id"] == action_id  # the partition moved on

    letters = await eventually(
        lambda: herald.services.dead_letters.find(source), lambda found: len(found) == 2
    )
    by_kind = {letter.kind: letter for letter in letters}
    assert set(by_kind) == {"undecodable", "ValueError"}
    assert by_kind["undecodable"].payload == "{not json"
    assert by_kind["ValueError"].event_id == "orphan-approval"
    assert "starts with" in by_kind["ValueError"].reason
    assert all(letter.topic == topic and letter.partition == 0 for letter in letters)
    assert [letter.offset for letter in letters] == [0, 1]
    assert dead_letters_counted(source, "undecodable") == counted + 1
    parked = await read_records(bootstrap, dead_letter_topic(prefix, "cards"), expected=2)
    assert sorted(record.value for record in parked) == sorted(
        [b"{not json", json.dumps(orphan).encode()]
    )
    assert {dict(record.headers)["source"] for record in parked} == {source.encode()}
    # The operator's view, as `herald dlq list --projection cards` prints it.
    listed = await asyncio.to_thread(
        subprocess.run,
        [str(HERALD), "dlq", "list", "--projection", "cards"],
        env={**os.environ, **worker_env(herald.settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == [
        letter.id for letter in letters
    ]
    # The cause is not fixed, so replaying keeps them parked.
    shown = io.StringIO()
    assert await list_letters(herald.services, source, shown) == 2
    assert shown.getvalue().splitlines() == [describe(letter) for letter in letters]
    replayed, failing = await replay_letters(
        herald.services, source, out=io.StringIO(), progress=io.StringIO()
    )
    assert (replayed, failing) == (0, 2)
    [again] = await herald.services.dead_letters.find(source, [by_kind["ValueError"].id])
    assert again.attempts == 2 and again.status == DeadLetterStatus.PARKED


async def test_a_snapshot_the_projector_cannot_apply_is_parked_and_later_notices_still_issue(
    one_partition: RunningHerald,
) -> None:
    herald = one_partition
    services = herald.services
    source = "projection:notices"
    async with GraphQLClient.of(herald) as client:
        portal = Portal(client)
        split = await portal.publish(
            reference="RU-POISON-SPLIT",
            eventType="SPLF",
            grossRate=None,
            ratio={"numerator": 2, "denominator": 1},
            recordDate="2026-12-15",
        )
        # A holding recorded as NaN (past any check of today): no entitlement
        # can be computed from it, however often it is retried.
        poison = await record_unchecked(services, "2026-12-15", {"ACC-BIG": "NaN"})
        # And on the notices topic: an acknowledgement that names no notice.
        acks = topic_for(herald.settings.kafka_topic_prefix, ev.AGGREGATE_NOTICE)
        blank_ack = ev.EventEnvelope(
            event_id="blank-ack",
            event_name=ev.NOTICE_ACKNOWLEDGED,
            aggregate_type=ev.AGGREGATE_NOTICE,
            aggregate_id="nt-nobody",
            version=1,
            occurred_at=datetime.now(UTC),
            actor="acc",
            correlation_id="poison",
            payload={},
        )
        await produce(
            herald.settings.kafka_bootstrap,
            acks,
            b"nt-nobody",
            json.dumps(ev.to_json(blank_ack)).encode(),
        )
        later = await portal.publish(reference="RU-POISON-LATER", recordDate="2026-12-16")
        await portal.positions({"ACC-1": "100"}, as_of="2026-12-16")
        await eventually(lambda: notices_of(herald, later), lambda found: set(found) == {"ACC-1"})

        # The poison, and the split's approval if it came in the same batch:
        # both need the split's notices, which cannot be derived yet.
        [ack_letter] = await eventually(
            lambda: services.dead_letters.find(source, [f"{source}|{acks}|0|0"]), bool
        )
        assert ack_letter.event_id == "blank-ack" and ack_letter.kind == "KeyError"
        await services.dead_letters.replayed(
            ack_letter.id, datetime.now(UTC), attempts=ack_letter.attempts
        )  # handled
        # (the split's approval may be parked in an earlier batch than the poison)
        letters = await eventually(
            lambda: services.dead_letters.find(source),
            lambda found: poison.event_id in {letter.event_id for letter in found},
        )
        assert {letter.kind for letter in letters} == {"InvalidOperation"}
        [letter] = [letter for letter in letters if letter.event_id == poison.event_id]
        assert letter.topic == topic_for(herald.settings.kafka_topic_prefix, "positions")
        assert (await services.ready())["projector:notices"]

        # The fix: the operator repairs the stored holding; then replays.
        assert await notices_of(herald, split) == {}
        pages = services.db[POSITION_PAGES]
        async for page in pages.find({"snapshotId": poison.payload["snapshotId"]}):
            repaired = [[account, "1000", tax] for account, _, tax in page["positions"]]
            await pages.update_one({"_id": page["_id"]}, {"$set": {"positions": repaired}})
        letters = await services.dead_letters.find(source)  # all parked by now
        replayed, failing = await replay_letters(
            services, source, out=io.StringIO(), progress=io.StringIO()
        )
        assert (replayed, failing) == (len(letters), 0)
        split_notices = await notices_of(herald, split)
        assert split_notices["ACC-BIG"]["content"]["entitlement"]["securities"] == "2000"
        assert await services.dead_letters.find(source) == []
        done = await services.dead_letters.find(source, status=DeadLetterStatus.REPLAYED)
        assert {d.id for d in done} == {letter.id for letter in [ack_letter, *letters]}
        assert all(d.replayed_at is not None for d in done)


async def test_stored_terms_that_fail_todays_rules_still_project_notices(
    one_partition: RunningHerald,
) -> None:
    """History is decoded, never re-validated: an announcement recorded before a
    rule tightened (here: a reference longer than today's limit) still issues
    its notices, and nothing is parked."""
    herald = one_partition
    services = herald.services
    terms = terms_to_payload(parse_terms({**DIVIDEND, "recordDate": "2026-12-18"}))
    terms["reference"] = "R" * 60
    with pytest.raises(InvalidInput):
        parse_terms(terms)
    assert decode_terms(terms).reference == "R" * 60
    action_id = "ca-recorded-long-ago"
    await append_unchecked(
        services,
        ev.AGGREGATE_CORPORATE_ACTION,
        action_id,
        1,
        ev.CORPORATE_ACTION_ANNOUNCED,
        {"caVersion": 1, "terms": terms},
    )
    await append_unchecked(
        services,
        ev.AGGREGATE_CORPORATE_ACTION,
        action_id,
        2,
        ev.PUBLICATION_APPROVED,
        {"caVersion": 1},
    )
    async with GraphQLClient.of(herald) as client:
        await Portal(client).positions({"ACC-7": "70"}, as_of="2026-12-18")
    await eventually(lambda: notices_of(herald, action_id), lambda found: set(found) == {"ACC-7"})
    assert await services.dead_letters.find() == []
