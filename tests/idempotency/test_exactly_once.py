"""One key, one execution, across crashes and stalls (invariant 3, issue 12).

- A process that died after storing a command's event but before recording
  its answer: the retry after the lease answers what the first execution
  answered, from the stored event, and stores nothing again (announce,
  recordPositions).
- A store that failed after the write landed (the answer was lost): the
  request answers SERVICE_UNAVAILABLE, the retry with the same key finds the
  write and answers it.
- An append sent twice with the same event ids (a driver retry) is one event.
- Several mutations under one key are refused before anything runs.
- Sixteen concurrent first appends on a new database all succeed.

Real SecantusDB, real Tansu, real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from adapters.auth.dev_issuer import DevIssuer
from adapters.mongo.client import Document, connect
from adapters.mongo.event_store import MongoEventStore
from adapters.mongo.positions import POSITION_PAGES
from commands.ids import new_event_id
from domain import events as ev
from domain.commands import CommandContext, RequestCommand
from domain.idempotency import CallerKey, IdempotencyRecord
from domain.ports import ConcurrencyError, EventStore, StoreUnavailable, UniqueKeyTaken
from domain.principal import ROLE_OPERATOR, Principal
from tests.faults.keyed import (
    announce_body,
    isin,
    keyed,
    positions_body,
    positions_stream,
    until_answered,
)
from tests.support import Broker, GraphQLClient, RunningHerald, herald_settings
from web.idempotency import request_fingerprint

OPERATOR = Principal(subject="olga", roles=frozenset({ROLE_OPERATOR}))


@pytest.fixture
async def herald(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> AsyncIterator[RunningHerald]:
    """One Herald on Tansu (the broker is not the subject here)."""
    settings = herald_settings(tansu_broker, mongo_uri, issuer)
    async with RunningHerald(settings, issuer) as running:
        yield running
    store: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri)
    await store.drop_database(settings.mongo_database)
    await store.close()


@pytest.fixture
async def fresh_db(mongo_uri: str) -> AsyncIterator[Any]:
    client = connect(mongo_uri)
    name = f"herald_fresh_{uuid.uuid4().hex[:10]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


def abandoned_claim(sent_key: str, body: dict[str, Any], lease_ago: float) -> IdempotencyRecord:
    """The in-flight claim a process left behind when it died `lease_ago` s ago."""
    claimed = datetime.now(UTC) - timedelta(seconds=lease_ago)
    return IdempotencyRecord(
        caller_key=CallerKey("olga", sent_key),
        fingerprint=request_fingerprint("POST", "/graphql", body),
        claim_id=uuid.uuid4().hex,
        claimed_at=claimed,
        expires_at=claimed + timedelta(days=1),
    )


def dead_process_context(record: IdempotencyRecord) -> CommandContext:
    return CommandContext(OPERATOR, "died", RequestCommand(record.origin()))


async def events_of(herald: RunningHerald, query: Document) -> list[Document]:
    return [doc async for doc in herald.services.db["events"].find(query)]


# --- (a) a crash between the write and the answer -----------------------------------


async def test_a_retry_after_a_crash_answers_the_stored_announcement(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    reference = f"RU-CRASH-{uuid.uuid4().hex[:8]}"
    sent = keyed("olga", client.token("olga", ROLE_OPERATOR), announce_body(reference))
    lease = herald.settings.idempotency_lease_seconds
    record = abandoned_claim(sent.key, sent.body, lease + 1)
    assert await herald.services.idempotency.claim(record) is None
    # the dead process had stored its event, and died before recording its answer
    first = await herald.services.handlers.announce(
        sent.body["variables"]["input"], dead_process_context(record)
    )

    await until_answered(client.http, sent)
    answer = sent.data("announceCorporateAction")
    assert answer["corporateAction"]["id"] == first.action.id
    assert answer["corporateAction"]["version"] == 1
    assert answer["consistencyToken"] == first.token.encode()
    stored = await events_of(herald, {"payload.terms.reference": reference})
    assert len(stored) == 1 and stored[0]["aggregateId"] == first.action.id
    assert stored[0]["command"] == {
        "id": record.command_id,
        "key": json.dumps(["olga", sent.key], separators=(",", ":")),
        "fingerprint": record.fingerprint,
    }
    # and the answer is now recorded: replayed byte for byte
    await until_answered(client.http, sent)
    assert sent.answers[1] == sent.answers[0]
    assert len(await events_of(herald, {"payload.terms.reference": reference})) == 1


async def test_a_retry_after_a_crash_answers_the_stored_positions(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    security = isin(7_000_001)
    body = positions_body(security, 25)
    sent = keyed("olga", client.token("olga", ROLE_OPERATOR), body)
    record = abandoned_claim(sent.key, body, herald.settings.idempotency_lease_seconds + 1)
    assert await herald.services.idempotency.claim(record) is None
    first = await herald.services.handlers.record_positions(
        body["variables"]["input"], dead_process_context(record)
    )

    await until_answered(client.http, sent)
    answer = sent.data("recordPositions")
    assert answer == {"accepted": 25, "consistencyToken": first.token.encode()}
    stored = await events_of(herald, {"aggregateId": positions_stream(body)})
    assert [doc["version"] for doc in stored] == [1]
    snapshot = stored[0]["payload"]["snapshotId"]
    # stored once, as pages of accounts (adapters/mongo/positions.py)
    pages = herald.services.db[POSITION_PAGES]
    stored_pages = [page async for page in pages.find({})]
    assert {page["snapshotId"] for page in stored_pages} == {snapshot}
    assert sum(len(page["positions"]) for page in stored_pages) == 25


class _FailsAfterWriting:
    """The event store, except that the first append's answer is lost: the
    events are stored, then the caller hears that the store is unavailable
    (as after a socket timeout)."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def append(
        self,
        events: Sequence[ev.EventEnvelope],
        reservations: Sequence[tuple[str, str]] = (),
        *,
        follows: int | None = None,
    ) -> list[ev.EventEnvelope]:
        stored = await self._store.append(events, reservations, follows=follows)
        if not self.failed:
            self.failed += 1
            raise StoreUnavailable("timed out (injected after the write)")
        return stored


async def test_a_write_whose_answer_was_lost_is_found_by_the_retry(
    herald: RunningHerald, client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers = herald.services.handlers
    failing = _FailsAfterWriting(handlers._store)
    monkeypatch.setattr(handlers, "_store", failing)
    token = client.token("olga", ROLE_OPERATOR)
    reference = f"RU-LOST-{uuid.uuid4().hex[:8]}"
    sent = keyed("olga", token, announce_body(reference))
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": sent.key}

    lost = await client.http.post("/graphql", json=sent.body, headers=headers)
    error = lost.json()["errors"][0]
    assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "nothing was changed" not in error["message"]
    assert failing.failed == 1

    await until_answered(client.http, sent)
    answer = sent.data("announceCorporateAction")  # not "reference … is already used"
    stored = await events_of(herald, {"payload.terms.reference": reference})
    assert len(stored) == 1
    assert answer["corporateAction"]["id"] == stored[0]["aggregateId"]


# --- (b) an append sent twice --------------------------------------------------------


def _event(aggregate_id: str, version: int, event_id: str | None = None) -> ev.EventEnvelope:
    return ev.EventEnvelope(
        event_id=event_id or new_event_id(),
        event_name=ev.POSITIONS_RECORDED,
        aggregate_type=ev.AGGREGATE_POSITIONS,
        aggregate_id=aggregate_id,
        version=version,
        occurred_at=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
        actor="olga",
        correlation_id="c",
        payload={"accounts": 1},
    )


async def test_an_append_sent_twice_is_written_once(fresh_db: Any) -> None:
    store = MongoEventStore(fresh_db)
    await store.ensure_indexes()
    event = _event("positions:A", 1)
    [first] = await store.append([event], [("snapshot", "A")])
    [again] = await store.append([event], [("snapshot", "A")])
    assert again == first and again.sequence == first.sequence
    assert await fresh_db["events"].count_documents({}) == 1

    # several events in one transaction, sent twice
    pair = [_event("positions:B", 1), _event("positions:B", 2)]
    written = await store.append(pair)
    assert await store.append(pair) == written
    assert [e.version for e in await store.load("positions:B")] == [1, 2]

    # a true conflict is still one: another event at a stored version
    with pytest.raises(ConcurrencyError):
        await store.append([_event("positions:A", 1)])
    with pytest.raises(UniqueKeyTaken):
        await store.append([_event("positions:C", 1)], [("snapshot", "A")])
    assert await fresh_db["events"].count_documents({}) == 3
    assert await store.get(event.event_id) == first


async def test_a_resent_positions_command_appends_no_second_version(
    herald: RunningHerald,
) -> None:
    """The command sent again under the same command id (a takeover racing a
    stalled first execution) hears the first answer; the stream stays at 1."""
    body = positions_body(isin(7_000_002), 3)
    record = abandoned_claim(uuid.uuid4().hex, body, 0)
    handlers = herald.services.handlers
    ctx = dead_process_context(record)
    first = await handlers.record_positions(body["variables"]["input"], ctx)
    second = await handlers.record_positions(body["variables"]["input"], ctx)
    assert second == first
    stored = await events_of(herald, {"aggregateId": positions_stream(body)})
    assert [doc["version"] for doc in stored] == [1]


# --- (c) several mutations under one key ---------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "mutation { a: announceCorporateAction(input: $i) { consistencyToken } "
        "b: announceCorporateAction(input: $j) { consistencyToken } }",
        "mutation { ...One b: announceCorporateAction(input: $j) { consistencyToken } } "
        "fragment One on Mutation { announceCorporateAction(input: $i) { consistencyToken } }",
    ],
)
async def test_several_mutations_under_one_key_are_refused_before_running(
    herald: RunningHerald, client: GraphQLClient, document: str
) -> None:
    first, second = (f"RU-TWO-{uuid.uuid4().hex[:8]}" for _ in range(2))
    variables = {
        "i": announce_body(first)["variables"]["input"],
        "j": announce_body(second)["variables"]["input"],
    }
    typed = document.replace(
        "mutation {",
        "mutation Two($i: AnnounceCorporateActionInput!, $j: AnnounceCorporateActionInput!) {",
    )
    token = client.token("olga", ROLE_OPERATOR)
    key = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    response = await client.http.post(
        "/graphql", json={"query": typed, "variables": variables}, headers=headers
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "BAD_USER_INPUT"
    assert problem["type"].endswith("/one-mutation-per-key")
    assert await herald.services.db["events"].count_documents({}) == 0
    assert await herald.services.idempotency.get(CallerKey("olga", key)) is None

    # the key is untouched: it may carry one of the mutations alone
    sent = keyed("olga", token, announce_body(first))
    sent.key = key
    await until_answered(client.http, sent)
    assert sent.data("announceCorporateAction")["corporateAction"]["version"] == 1


# --- (d) concurrent first writes on a new database ----------------------------------


async def test_sixteen_concurrent_first_appends_on_a_new_database(fresh_db: Any) -> None:
    """No counter, no index yet: every append allocates from a counter that
    does not exist, as the first requests on a new data folder do (the race
    is lost about one time in three: ten new databases)."""
    client = fresh_db.client
    for round_ in range(10):
        db = client[f"{fresh_db.name}_{round_}"]
        store = MongoEventStore(db)
        appended = await asyncio.gather(
            *(store.append([_event(f"positions:{n}", 1)]) for n in range(16))
        )
        sequences = sorted(stored[0].sequence for stored in appended)
        assert len(set(sequences)) == 16 and sequences[0] >= 1
        assert await db["events"].count_documents({}) == 16
        await client.drop_database(db.name)


async def test_sixteen_concurrent_first_requests_on_a_new_herald(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    token = client.token("olga", ROLE_OPERATOR)
    sent = [keyed("olga", token, announce_body(f"RU-FIRST-{n:02d}")) for n in range(16)]
    await asyncio.gather(*(until_answered(client.http, s) for s in sent))
    for request in sent:
        assert request.attempts == 1, request.answers
        assert request.data("announceCorporateAction")["corporateAction"]["version"] == 1
    sequences = [doc["sequence"] async for doc in herald.services.db["events"].find()]
    assert len(sequences) == 16 and len(set(sequences)) == 16
