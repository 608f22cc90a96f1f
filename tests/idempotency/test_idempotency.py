"""Idempotency-Key on mutations (invariant 3, the app's half).

Over real HTTP against a running Herald (real SecantusDB, each broker): key
validation, replay, 422 on a different body, caller scoping, 409 in flight,
takeover of an abandoned claim, and the storm of 100 identical requests.
The failure paths (5xx, an app that raises, a store that is down, an
oversized body) run the middleware around a scripted app with the real store.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import websockets
from pymongo import AsyncMongoClient
from starlette.types import Message, Receive, Scope, Send
from websockets import Subprotocol

from adapters.mongo.client import Document, connect
from adapters.mongo.idempotency import IDEMPOTENCY, MongoIdempotencyStore
from devstack.process import free_port
from domain.commands import CURRENT_COMMAND, RequestCommand
from domain.events import CORPORATE_ACTION_ANNOUNCED
from domain.idempotency import CallerKey, IdempotencyRecord, StoredResponse
from domain.ports import StoreUnavailable
from tests.support import DIVIDEND, GraphQLClient, RunningHerald, operation_document
from web.idempotency import (
    IdempotencyMiddleware,
    InvalidIdempotencyKey,
    idempotency_key,
    is_mutation_request,
    is_server_failure,
    request_fingerprint,
)

PORTAL = operation_document("portal")
PROBLEMS = "https://herald.example/problems/"
APPROVE = (
    "mutation($i: ApprovePublicationInput!) { approvePublication(input: $i) { consistencyToken } }"
)


def announce_body(reference: str) -> dict[str, Any]:
    return {
        "query": PORTAL,
        "operationName": "PortalAnnounce",
        "variables": {"input": {**DIVIDEND, "reference": reference}},
    }


def headers(token: str | None = None, key: str | bytes | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"Content-Type": "application/json"}
    if token:
        result["Authorization"] = f"Bearer {token}"
    if key is not None:
        result["Idempotency-Key"] = key
    return result


async def send(
    client: GraphQLClient, body: Any, *, token: str | None = None, key: str | bytes | None = None
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.http.post("/graphql", content=raw, headers=headers(token, key))


async def announced_events(herald: RunningHerald, reference: str) -> int:
    return await herald.services.db["events"].count_documents(
        {"eventType": CORPORATE_ACTION_ANNOUNCED, "payload.terms.reference": reference}
    )


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"] == PROBLEMS + slug
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    return problem


def executed(response: httpx.Response) -> bool:
    return response.status_code == 200 and "idempotent-replayed" not in response.headers


def replayed(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.headers.get("idempotent-replayed") == "true"


# --- against the running app, on each broker ------------------------------------------


async def test_mutations_need_a_valid_key_and_queries_none(
    client: GraphQLClient, herald: RunningHerald
) -> None:
    approve = {"query": APPROVE, "variables": {"i": {"id": "CA1", "version": 1}}}
    missing = assert_problem(await send(client, approve), 400, "idempotency-key-missing")
    assert missing["code"] == "IDEMPOTENCY_KEY_MISSING"
    assert_problem(await send(client, approve, key=""), 400, "idempotency-key-missing")
    for bad in ("k" * 256, "with space", "caf\u00e9".encode()):
        assert_problem(await send(client, approve, key=bad), 400, "idempotency-key-invalid")

    longest = await send(client, approve, key="k" * 255)
    assert longest.status_code == 200
    assert longest.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # queries, by POST or GET, need no key
    query = await send(client, {"query": "{ __typename }"})
    assert query.status_code == 200 and query.json() == {"data": {"__typename": "Query"}}
    get = await client.http.get("/graphql", params={"query": "{ __typename }"})
    assert get.status_code == 200
    # the operation selected by operationName decides, not the document's first one
    operator = client.token("olga", "ca-operator")
    drafts = {**announce_body("RU-IDEM-Q"), "operationName": "PortalDrafts", "variables": {}}
    assert (await send(client, drafts, token=operator)).status_code == 200
    announce = announce_body("RU-IDEM-Q")
    assert_problem(await send(client, announce, token=operator), 400, "idempotency-key-missing")

    # the GraphQL WebSocket runs queries but refuses mutations: they carry no key there
    url = herald.base_url.replace("http://", "ws://") + "/graphql"
    auth = {"Authorization": f"Bearer {operator}"}
    async with websockets.connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], additional_headers=auth
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "m", "type": "subscribe", "payload": announce}))
        refused = json.loads(await ws.recv())
        assert refused["id"] == "m" and refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_MISSING"
        typename = {"query": "{ __typename }"}
        await ws.send(json.dumps({"id": "q", "type": "subscribe", "payload": typename}))
        answer = json.loads(await ws.recv())
        assert answer == {"id": "q", "type": "next", "payload": {"data": {"__typename": "Query"}}}
    assert await announced_events(herald, "RU-IDEM-Q") == 0


async def test_replay_reused_key_and_caller_scope(
    client: GraphQLClient, herald: RunningHerald
) -> None:
    olga = client.token("olga", "ca-operator")
    oleg = client.token("oleg", "ca-operator")
    key = uuid.uuid4().hex
    body = announce_body("RU-IDEM-0001")

    first = await send(client, body, token=olga, key=key)
    assert executed(first), first.text
    assert first.json()["data"]["announceCorporateAction"]["corporateAction"]["version"] == 1

    again = await send(client, body, token=olga, key=key)
    assert replayed(again)
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]

    # whitespace and key order are not a different body
    reformatted = json.dumps(body, indent=3, sort_keys=True).encode()
    reordered = json.dumps(dict(reversed(list(body.items()))), separators=(",", ":")).encode()
    for raw in (reformatted, reordered):
        same = await send(client, raw, token=olga, key=key)
        assert replayed(same) and same.content == first.content

    # different variables are a different body
    other_body = announce_body("RU-IDEM-0002")
    reused = await send(client, other_body, token=olga, key=key)
    assert assert_problem(reused, 422, "idempotency-key-reused")["code"] == "IDEMPOTENCY_KEY_REUSED"

    # the same key from another caller is another key
    independent = await send(client, other_body, token=oleg, key=key)
    assert executed(independent), independent.text
    assert not independent.json().get("errors")

    assert await announced_events(herald, "RU-IDEM-0001") == 1
    assert await announced_events(herald, "RU-IDEM-0002") == 1


async def test_in_flight_claim_is_409_and_an_abandoned_one_is_taken_over(
    client: GraphQLClient, herald: RunningHerald
) -> None:
    store = herald.services.idempotency
    olga = client.token("olga", "ca-operator")
    body = announce_body("RU-IDEM-STALE")
    fingerprint = request_fingerprint("POST", "/graphql", body)
    now = datetime.now(UTC)

    def claim(key: str, claimed_at: datetime) -> IdempotencyRecord:
        return IdempotencyRecord(
            CallerKey("olga", key),
            fingerprint,
            uuid.uuid4().hex,
            claimed_at,
            now + timedelta(days=1),
        )

    # another request holds the key right now
    busy = uuid.uuid4().hex
    assert await store.claim(claim(busy, now)) is None
    in_progress = await send(client, body, token=olga, key=busy)
    assert assert_problem(in_progress, 409, "request-in-progress")["code"] == "REQUEST_IN_PROGRESS"
    # Retry-After: the seconds left on the claim's lease (60 s in these tests)
    lease = herald.settings.idempotency_lease_seconds
    assert 1 <= int(in_progress.headers["retry-after"]) <= lease

    # a claim whose process died (older than the lease) does not block the key
    abandoned = uuid.uuid4().hex
    assert await store.claim(claim(abandoned, now - timedelta(minutes=5))) is None
    taken_over = await send(client, body, token=olga, key=abandoned)
    assert executed(taken_over), taken_over.text
    assert not taken_over.json().get("errors")
    # The stored event is the record: no response is written, the claim keeps
    # the key a day, and a repeat rebuilds the first answer from the event.
    record = await store.get(CallerKey("olga", abandoned))
    assert record is not None and record.in_flight and record.response is None
    assert record.expires_at >= datetime.now(UTC) + timedelta(hours=23, minutes=59)
    again = await send(client, body, token=olga, key=abandoned)
    assert replayed(again) and again.content == taken_over.content
    assert await announced_events(herald, "RU-IDEM-STALE") == 1


async def test_storm_of_identical_requests_executes_once(
    client: GraphQLClient, herald: RunningHerald
) -> None:
    olga = client.token("olga", "ca-operator")
    key = uuid.uuid4().hex
    raw = json.dumps(announce_body("RU-IDEM-STORM")).encode()
    responses = await asyncio.gather(
        *(client.http.post("/graphql", content=raw, headers=headers(olga, key)) for _ in range(100))
    )
    originals = [r for r in responses if executed(r)]
    replays = [r for r in responses if replayed(r)]
    in_progress = [r for r in responses if r.status_code == 409]
    assert len(originals) == 1, [r.status_code for r in responses]
    assert len(originals) + len(replays) + len(in_progress) == 100
    original = originals[0]
    assert not original.json().get("errors"), original.text
    assert all(r.content == original.content for r in replays)
    for response in in_progress:
        assert_problem(response, 409, "request-in-progress")
    assert await announced_events(herald, "RU-IDEM-STORM") == 1
    # once the storm is over, a repeat is a replay
    assert replayed(await client.http.post("/graphql", content=raw, headers=headers(olga, key)))


# --- the middleware's failure paths, around a scripted app ---------------------------

MUTATION = {"query": "mutation Go { go }"}
OK = (200, b'{"data":{"go":true}}')


@dataclass
class ScriptedApp:
    """Answers each request with the next scripted (status, body) or exception."""

    answers: list[tuple[int, bytes] | Exception]
    calls: int = 0
    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        message: Message = await receive()
        self.bodies.append(message["body"])
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        start = {"type": "http.response.start", "status": status}
        await send({**start, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def idempotency_store(mongo_uri: str) -> AsyncIterator[MongoIdempotencyStore]:
    client = connect(mongo_uri)
    name = f"idem_{uuid.uuid4().hex[:10]}"
    store = MongoIdempotencyStore(client[name])
    await store.ensure_indexes()
    yield store
    await client.drop_database(name)
    await client.close()


def http_to(app: IdempotencyMiddleware) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://herald")


async def test_server_failures_are_not_recorded(idempotency_store: MongoIdempotencyStore) -> None:
    internal = b'{"data":null,"errors":[{"extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}'
    app = ScriptedApp([(503, b"{}"), RuntimeError("boom"), (200, internal), OK, (400, b"{}")])
    async with http_to(IdempotencyMiddleware(app, idempotency_store)) as http:
        key = {"Idempotency-Key": "retry-me"}
        assert (await http.post("/graphql", json=MUTATION, headers=key)).status_code == 503
        assert (await http.post("/graphql", json=MUTATION, headers=key)).status_code == 500
        masked = await http.post("/graphql", json=MUTATION, headers=key)
        assert masked.content == internal
        done = await http.post("/graphql", json=MUTATION, headers=key)
        assert done.status_code == 200 and "idempotent-replayed" not in done.headers
        assert app.calls == 4
        again = await http.post("/graphql", json=MUTATION, headers=key)
        assert again.headers["idempotent-replayed"] == "true" and again.content == OK[1]
        assert app.calls == 4
        # a refusal of the caller (4xx) is an answer: recorded and replayed
        other = {"Idempotency-Key": "refused"}
        assert (await http.post("/graphql", json=MUTATION, headers=other)).status_code == 400
        replay = await http.post("/graphql", json=MUTATION, headers=other)
        assert replay.status_code == 400 and replay.headers["idempotent-replayed"] == "true"
        assert app.calls == 5
    # the inner app got the body the caller sent
    assert all(json.loads(body) == MUTATION for body in app.bodies)


async def test_store_down_fails_closed() -> None:
    # Not adapters.mongo.client.connect: its timeoutMS (10 s) outlasts serverSelectionTimeoutMS.
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", serverSelectionTimeoutMS=300
    )
    app = ScriptedApp([OK])
    try:
        async with http_to(IdempotencyMiddleware(app, MongoIdempotencyStore(client["x"]))) as http:
            response = await http.post("/graphql", json=MUTATION, headers={"Idempotency-Key": "k"})
            problem = assert_problem(response, 503, "idempotency-unavailable")
            assert problem["code"] == "SERVICE_UNAVAILABLE"
            # queries do not touch the store
            query = await http.post("/graphql", json={"query": "{ go }"})
            assert query.status_code == 200
    finally:
        await client.close()
    assert app.calls == 1


async def test_oversized_or_too_deep_body_is_refused(
    idempotency_store: MongoIdempotencyStore,
) -> None:
    app = ScriptedApp([])
    middleware = IdempotencyMiddleware(app, idempotency_store, max_body_bytes=100_000)
    big = {"query": "mutation Go { go }", "variables": {"pad": "x" * 100_000}}
    async with http_to(middleware) as http:
        response = await http.post("/graphql", json=big, headers={"Idempotency-Key": "k"})
        assert_problem(response, 413, "request-too-large")
        deep = await http.post("/graphql", content=b"[" * 90_000, headers={"Idempotency-Key": "k"})
        assert_problem(deep, 400, "request-malformed")
    assert app.calls == 0


async def test_key_binding_and_expiry(idempotency_store: MongoIdempotencyStore) -> None:
    clock = Clock()
    app = ScriptedApp([OK, OK, OK])
    middleware = IdempotencyMiddleware(app, idempotency_store, lease_seconds=60, clock=clock)
    other = {"query": "mutation Go { go }", "variables": {"x": 1}}
    async with http_to(middleware) as http:
        key = {"Idempotency-Key": "bound"}
        assert (await http.post("/graphql", json=MUTATION, headers=key)).status_code == 200
        clock.now += timedelta(hours=23)
        assert_problem(
            await http.post("/graphql", json=other, headers=key), 422, "idempotency-key-reused"
        )
        # after the key's 24 hours it is free for any request
        clock.now += timedelta(hours=2)
        fresh = await http.post("/graphql", json=other, headers=key)
        assert fresh.status_code == 200 and "idempotent-replayed" not in fresh.headers

        # an abandoned claim is taken over by the same request, not by another body
        stale = IdempotencyRecord(
            CallerKey(None, "abandoned"),
            request_fingerprint("POST", "/graphql", MUTATION),
            "dead-process",
            clock.now - timedelta(minutes=2),
            clock.now + timedelta(days=1),
        )
        await idempotency_store.claim(stale)
        abandoned = {"Idempotency-Key": "abandoned"}
        assert_problem(
            await http.post("/graphql", json=other, headers=abandoned),
            422,
            "idempotency-key-reused",
        )
        assert (await http.post("/graphql", json=MUTATION, headers=abandoned)).status_code == 200
    assert app.calls == 3


async def test_a_request_finishing_after_its_takeover_answers_but_records_nothing(
    idempotency_store: MongoIdempotencyStore,
) -> None:
    """The first request stalls past its lease; the retry takes its claim
    over and is answered; then the first finishes. Its caller hears the
    first's answer, the key keeps the retry's: the takeover ended the claim
    before the late completion (the first end of a claim stands)."""
    clock = Clock()
    stalled = asyncio.Event()
    go_on = asyncio.Event()
    first, retry = (200, b'{"data":{"go":"first"}}'), (200, b'{"data":{"go":"retry"}}')
    scripted = ScriptedApp([retry, first])  # the retry runs first

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if not stalled.is_set():  # the first request stalls until told
            stalled.set()
            await go_on.wait()
        await scripted(scope, receive, send)

    middleware = IdempotencyMiddleware(app, idempotency_store, lease_seconds=60, clock=clock)
    key = {"Idempotency-Key": "stalls"}
    async with http_to(middleware) as http:
        late = asyncio.create_task(http.post("/graphql", json=MUTATION, headers=key))
        await stalled.wait()
        clock.now += timedelta(minutes=2)
        taken_over = await http.post("/graphql", json=MUTATION, headers=key)
        assert taken_over.content == retry[1] and "idempotent-replayed" not in taken_over.headers
        go_on.set()
        assert (await late).content == first[1]
        again = await http.post("/graphql", json=MUTATION, headers=key)
        assert again.headers["idempotent-replayed"] == "true" and again.content == retry[1]
    assert scripted.calls == 2


async def test_a_response_an_older_herald_recorded_still_replays(mongo_uri: str) -> None:
    """Before responses were documents of their own, the response was written
    into the claim document: such a key replays it byte for byte."""
    client = connect(mongo_uri)
    database = client[f"idem_{uuid.uuid4().hex[:10]}"]
    now = datetime.now(UTC)
    body = b'{"data":{"go":"recorded"}}\n'
    await database[IDEMPOTENCY].insert_one(
        {
            "_id": CallerKey(None, "recorded").scoped,
            "subject": None,
            "key": "recorded",
            "state": "completed",
            "fingerprint": request_fingerprint("POST", "/graphql", MUTATION),
            "claim": "old-claim",
            "command": "old-command",
            "claimedAt": now,
            "createdAt": now,
            "expiresAt": now + timedelta(days=1),
            "response": {
                "status": 200,
                "headers": [["content-type", "application/json"]],
                "body": body,
            },
            "completedAt": now,
        }
    )
    app = ScriptedApp([])
    try:
        store = MongoIdempotencyStore(database)
        async with http_to(IdempotencyMiddleware(app, store)) as http:
            key = {"Idempotency-Key": "recorded"}
            replay = await http.post("/graphql", json=MUTATION, headers=key)
    finally:
        await client.drop_database(database.name)
        await client.close()
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert replay.content == body
    assert app.calls == 0


class _ClaimAnswerLost:
    """The Mongo store, except that the first claim's answer is lost: the claim
    is written, then the caller hears that the store is unavailable (a store
    that froze mid-claim, as after a socket timeout)."""

    def __init__(self, store: MongoIdempotencyStore) -> None:
        self._store = store
        self.lost = 0

    async def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        held = await self._store.claim(record)
        if not self.lost:
            self.lost += 1
            raise StoreUnavailable("timed out (injected after the write)")
        return held

    async def take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        return await self._store.take_over(held, record)

    async def complete(
        self, record: IdempotencyRecord, response: StoredResponse, expires_at: datetime
    ) -> bool:
        return await self._store.complete(record, response, expires_at)

    async def release(self, record: IdempotencyRecord) -> None:
        await self._store.release(record)


async def test_a_claim_written_by_a_frozen_store_is_409_with_the_lease_left(
    idempotency_store: MongoIdempotencyStore,
) -> None:
    """503 "nothing was executed", yet the claim landed: the 503 says a retry
    may meet 409 until the lease ends, and each 409 says when to retry: about as
    long as the claim has run, at most the lease left."""
    clock = Clock()
    app = ScriptedApp([OK])
    store = _ClaimAnswerLost(idempotency_store)
    middleware = IdempotencyMiddleware(app, store, lease_seconds=60, clock=clock)
    key = {"Idempotency-Key": "frozen"}
    async with http_to(middleware) as http:
        refused = assert_problem(
            await http.post("/graphql", json=MUTATION, headers=key), 503, "idempotency-unavailable"
        )
        assert "nothing was executed" in refused["detail"]
        assert "409" in refused["detail"] and "lease of 60 s" in refused["detail"]

        busy = await http.post("/graphql", json=MUTATION, headers=key)
        assert_problem(busy, 409, "request-in-progress")
        assert busy.headers["retry-after"] == "1"  # a claim just made: most answer at once
        clock.now += timedelta(seconds=20.2)
        waited = await http.post("/graphql", json=MUTATION, headers=key)
        assert waited.headers["retry-after"] == "21"  # about as long as it has run
        clock.now += timedelta(seconds=24.3)
        later = await http.post("/graphql", json=MUTATION, headers=key)
        assert_problem(later, 409, "request-in-progress")
        assert later.headers["retry-after"] == "16"  # 15.5 s left, rounded up
        assert app.calls == 0

        clock.now += timedelta(seconds=16)  # the lease has ended: taken over, runs once
        done = await http.post("/graphql", json=MUTATION, headers=key)
        assert done.status_code == 200 and "idempotent-replayed" not in done.headers
    assert app.calls == 1


@dataclass
class EventRecord:
    """`StoredCommands` over the command ids whose event a CommandApp stored."""

    ids: set[str] = field(default_factory=set)

    async def stored(self, command_id: str) -> bool:
        return command_id in self.ids


@dataclass
class CommandApp:
    """Answers like a command handler under a key: stores "its event" (the
    command id into `events`) and answers from it, marking the answer as
    rebuilt from the event; `live`: the answer shows live state too."""

    events: EventRecord
    live: bool = False
    runs: list[RequestCommand] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        command = CURRENT_COMMAND.get()
        assert command is not None
        await receive()
        self.runs.append(command)
        self.events.ids.add(command.origin.command_id)
        command.outcome.event_stored()
        if self.live:
            command.outcome.reads_live_state()
        body = json.dumps({"data": {"go": command.origin.command_id}}).encode()
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


async def test_a_command_whose_event_is_stored_is_answered_from_it(
    idempotency_store: MongoIdempotencyStore,
) -> None:
    clock = Clock()
    events = EventRecord()
    app = CommandApp(events)
    middleware = IdempotencyMiddleware(
        app, idempotency_store, stored=events, lease_seconds=60, clock=clock
    )
    key = {"Idempotency-Key": "stored"}
    async with http_to(middleware) as http:
        first = await http.post("/graphql", json=MUTATION, headers=key)
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        record = await idempotency_store.get(CallerKey(None, "stored"))
        assert record is not None and record.in_flight  # no response written
        for wait in (timedelta(0), timedelta(minutes=5), timedelta(hours=24)):
            clock.now = record.claimed_at + wait  # within the lease, past it, a day on
            again = await http.post("/graphql", json=MUTATION, headers=key)
            assert again.headers["idempotent-replayed"] == "true"
            assert again.content == first.content
        # each repeat ran resumed, under the first's command id; no takeover
        assert [run.resumed for run in app.runs] == [False, True, True, True]
        assert {run.origin.command_id for run in app.runs} == {record.command_id}
        unchanged = await idempotency_store.get(CallerKey(None, "stored"))
        assert unchanged is not None and unchanged.claim_id == record.claim_id

        # the key's day is over: the same body is a new command
        clock.now = record.expires_at
        fresh = await http.post("/graphql", json=MUTATION, headers=key)
        assert "idempotent-replayed" not in fresh.headers and fresh.content != first.content
        assert not app.runs[-1].resumed


async def test_a_stored_command_whose_answer_shows_live_state_is_recorded(
    idempotency_store: MongoIdempotencyStore,
) -> None:
    clock = Clock()
    events = EventRecord()
    app = CommandApp(events, live=True)
    middleware = IdempotencyMiddleware(
        app, idempotency_store, stored=events, lease_seconds=60, clock=clock
    )
    async with http_to(middleware) as http:
        key = {"Idempotency-Key": "live"}
        first = await http.post("/graphql", json=MUTATION, headers=key)
        record = await idempotency_store.get(CallerKey(None, "live"))
        assert record is not None and record.response is not None
        again = await http.post("/graphql", json=MUTATION, headers=key)
        assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
        assert len(app.runs) == 1

        # A process died after storing the event of such a command: its answer
        # cannot be rebuilt, so the claim is 409 within its lease, then taken
        # over and the resumed command's answer recorded.
        dead = IdempotencyRecord(
            CallerKey(None, "died"),
            request_fingerprint("POST", "/graphql", MUTATION),
            "dead-process",
            clock.now,
            clock.now + timedelta(days=1),
        )
        await idempotency_store.claim(dead)
        events.ids.add(dead.command_id)
        died = {"Idempotency-Key": "died"}
        busy = await http.post("/graphql", json=MUTATION, headers=died)
        assert_problem(busy, 409, "request-in-progress")
        clock.now += timedelta(minutes=2)
        resumed = await http.post("/graphql", json=MUTATION, headers=died)
        assert resumed.status_code == 200 and "idempotent-replayed" not in resumed.headers
        assert app.runs[-1].resumed and app.runs[-1].origin.command_id == dead.command_id
        taken = await idempotency_store.get(CallerKey(None, "died"))
        assert taken is not None and taken.response is not None
        assert taken.response.body == resumed.content


# --- the pure parts ------------------------------------------------------------------


def test_key_validation() -> None:
    assert idempotency_key([(b"idempotency-key", b"a" * 255)]) == "a" * 255
    assert idempotency_key([(b"idempotency-key", b"!~09AZaz-_.:")]) == "!~09AZaz-_.:"
    for bad in ([], [(b"idempotency-key", b"")]):
        with pytest.raises(InvalidIdempotencyKey) as missing:
            idempotency_key(bad)
        assert missing.value.problem.slug == "idempotency-key-missing"
    for value in (b"a" * 256, b"a b", b"tab\t", b"\x7f", b"caf\xc3\xa9"):
        with pytest.raises(InvalidIdempotencyKey) as invalid:
            idempotency_key([(b"idempotency-key", value)])
        assert invalid.value.problem.status == 400
    with pytest.raises(InvalidIdempotencyKey):
        idempotency_key([(b"idempotency-key", b"a"), (b"idempotency-key", b"b")])


def test_fingerprint_is_of_the_canonical_request() -> None:
    body = json.loads('{"query": "mutation { go }", "variables": {"a": 1, "b": [1, 2]}}')
    reordered = json.loads('{"variables":{"b":[1,2],"a":1},"query":"mutation { go }"}')
    fingerprint = request_fingerprint("POST", "/graphql", body)
    assert request_fingerprint("post", "/graphql", reordered) == fingerprint
    assert len(fingerprint) == 64
    changed = {**body, "variables": {"a": 2, "b": [1, 2]}}
    assert request_fingerprint("POST", "/graphql", changed) != fingerprint
    swapped = {**body, "variables": {"a": 1, "b": [2, 1]}}
    assert request_fingerprint("POST", "/graphql", swapped) != fingerprint
    assert request_fingerprint("POST", "/other", body) != fingerprint


@pytest.mark.parametrize(
    ("body", "mutation"),
    [
        ({"query": "mutation { go }"}, True),
        ({"query": "mutation A { go } query B { q }", "operationName": "A"}, True),
        ({"query": "mutation A { go } query B { q }", "operationName": "B"}, False),
        ({"query": "mutation A { go } query B { q }"}, False),  # ambiguous: refused by GraphQL
        ({"query": "mutation A { go }", "operationName": "Nope"}, False),
        ({"query": "{ q }"}, False),
        ({"query": "subscription { s }"}, False),
        ({"query": "mutation { "}, False),  # syntax error: refused by GraphQL
        ({"query": 42}, False),
        ([{"query": "{ q }"}, {"query": "mutation { go }"}], True),  # a batch
        ("mutation { go }", False),
        (None, False),
    ],
)
def test_is_mutation_request(body: Any, mutation: bool) -> None:
    assert is_mutation_request(body) is mutation


def test_server_failure_detection() -> None:
    json_type = (("content-type", "application/json"),)
    assert is_server_failure(StoredResponse(502, (), b""))
    assert not is_server_failure(StoredResponse(200, json_type, b'{"data":{"x":1}}'))
    coded = b'{"errors":[{"extensions":{"code":"%s"}}]}'
    assert is_server_failure(StoredResponse(200, json_type, coded % b"SERVICE_UNAVAILABLE"))
    assert not is_server_failure(StoredResponse(200, json_type, coded % b"BAD_USER_INPUT"))
    assert not is_server_failure(StoredResponse(200, json_type, b"not json"))
