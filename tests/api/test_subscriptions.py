"""Subscriptions over a real WebSocket (graphql-transport-ws) with real tokens.

`noticeIssued` is fed from the `notices` read model: a notice inserted there
(as the notices projector writes it) reaches the subscribers holding its
account, and nobody else (invariant 5). `cardPublished` delivers the public
view of a card when a version of it is published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, NegotiationError
from websockets.typing import Subprotocol

from tests.api.helpers import (
    ProtocolClosed,
    Socket,
    announced,
    approved,
    bearer,
    depositor,
    eventually,
    fresh,
    insert_notices,
    live_for,
    notice_doc,
    open_socket,
    save_card,
    socket,
)
from tests.projections.scenario import Portal
from tests.support import GraphQLClient, RunningHerald, drawn, operation_document

MOBILE = operation_document("mobile")
FEED = "MobileNoticeFeed"
CARD_PUBLISHED = """
subscription { cardPublished { id reference status version publishedAt pendingVersion } }
"""


def codes(message: dict[str, Any]) -> list[str]:
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    return [e.get("extensions", {}).get("code") for e in errors]


async def test_a_depositor_receives_their_new_notice_and_not_anothers(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    mine, theirs = fresh("A"), fresh("B")
    state = announced(reference=f"RU-SUB-{uuid.uuid4().hex[:6]}")
    published = approved(state, 1)
    await save_card(herald, published, 0)
    async with (
        socket(herald, bearer(depositor(api, mine))) as alice,
        socket(herald, {"token": depositor(api, theirs)}) as bob,
    ):
        await alice.subscribe(MOBILE, operation_name=FEED)
        await bob.subscribe(MOBILE, operation_name=FEED)
        await live_for(herald, mine, theirs)

        other = notice_doc(theirs, published.id)
        own = notice_doc(mine, published.id)
        await insert_notices(herald, [other, own])

        notice = (await alice.next_data())["noticeIssued"]
        assert notice["id"] == own["_id"] and notice["accountId"] == mine
        assert notice["kind"] == "NEW" and notice["version"] == 1
        assert notice["corporateAction"]["id"] == published.id
        assert notice["entitlement"]["net"] == {"amount": "2897.10", "currency": "RUB"}
        assert (await bob.next_data())["noticeIssued"]["id"] == other["_id"]

        # An update (a new version) is issued again; an acknowledgement is not.
        notices = herald.services.db["notices"]
        await notices.update_one(
            {"_id": own["_id"]},
            {"$set": {"acknowledgedAt": own["issuedAt"]}},
        )
        await notices.update_one(
            {"_id": own["_id"]},
            {"$set": {"version": 2, "kind": "UPDATE", "changedFields": ["paymentDate"]}},
        )
        update = (await alice.next_data())["noticeIssued"]
        assert (update["id"], update["kind"], update["version"]) == (own["_id"], "UPDATE", 2)
        assert update["changedFields"] == ["paymentDate"]
        await alice.silent_for(0.5)
        await bob.silent_for(0.1)


async def test_many_subscribers_of_one_account_share_one_stream(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    account = fresh("A")
    token = depositor(api, account)
    async with socket(herald, bearer(token)) as first, socket(herald, bearer(token)) as second:
        for client in (first, second):
            await client.subscribe(MOBILE, operation_name=FEED)
        await live_for(herald, account)
        doc = notice_doc(account, "CA-X")
        await insert_notices(herald, [doc])
        for client in (first, second):
            assert (await client.next_data())["noticeIssued"]["id"] == doc["_id"]


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Basic b2xnYTpzZWNyZXQ="},
        {"authorization": 42},
        {"token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
        {"token": ""},
    ],
    ids=["garbage", "basic", "not-a-string", "alg-none", "empty"],
)
async def test_a_bad_token_in_connection_init_closes_the_socket(
    herald: RunningHerald, payload: dict[str, Any]
) -> None:
    ws = await open_socket(herald, payload)
    try:
        with pytest.raises(ProtocolClosed) as closed:
            await Socket(ws).receive()
        assert closed.value.code == 4403
    finally:
        await ws.close()


async def test_expired_and_foreign_audience_tokens_are_refused(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    account = fresh("A")
    for token in (
        api.issuer.mint("dora", accounts=(account,), scopes=("notices:read",), ttl_seconds=-600),
        api.issuer.mint("dora", accounts=(account,), scopes=("notices:read",), audience="other"),
    ):
        ws = await open_socket(herald, bearer(token))
        try:
            with pytest.raises(ProtocolClosed) as closed:
                await Socket(ws).receive()
            assert closed.value.code == 4403
        finally:
            await ws.close()


async def test_notices_need_a_depositor(herald: RunningHerald, api: GraphQLClient) -> None:
    for payload, code in (
        ({}, "UNAUTHENTICATED"),
        (bearer(api.token("olga", "ca-operator", accounts=(fresh("A"),))), "FORBIDDEN"),
    ):
        async with socket(herald, payload) as client:
            await client.subscribe(MOBILE, operation_name=FEED)
            message = await client.receive()
            assert message["type"] in ("next", "error"), message
            assert codes(message) == [code]


# --- cardPublished -------------------------------------------------------------------


async def test_card_published_delivers_the_public_view(herald: RunningHerald) -> None:
    async with socket(herald) as client:
        await client.subscribe(CARD_PUBLISHED)
        await eventually(lambda: herald.services.published_cards.subscriber_count > 0)
        draft = announced(reference=f"RU-PUB-{uuid.uuid4().hex[:6]}")
        await save_card(herald, draft, 0)  # a draft: not published
        published = approved(draft, 1)
        await save_card(herald, published, draft.revision)
        card = (await client.next_data())["cardPublished"]
        assert card["id"] == published.id
        assert card["status"] == "PUBLISHED" and card["version"] == 1
        assert card["pendingVersion"] is None
        await client.silent_for(0.3)


async def test_card_published_through_the_portal(herald: RunningHerald, api: GraphQLClient) -> None:
    portal = Portal(api)
    reference = f"RU-FLOW-{uuid.uuid4().hex[:6]}"
    async with socket(herald) as client:
        await client.subscribe(CARD_PUBLISHED)
        await eventually(lambda: herald.services.published_cards.subscriber_count > 0)
        action_id = await portal.announce(reference=reference)
        await portal.approve(action_id, 1)
        first = (await client.next_data(timeout=30))["cardPublished"]
        assert (first["id"], first["reference"], first["version"]) == (action_id, reference, 1)
        # An amendment is published only when approved: one event, for version 2.
        await portal.amend(action_id, 1, paymentDate="2026-12-30")
        second = (await client.next_data(timeout=30))["cardPublished"]
        assert (second["id"], second["version"], second["status"]) == (action_id, 2, "PUBLISHED")
        await client.silent_for(0.5)


# --- the row-level rule, as a property -------------------------------------------------


@dataclass(frozen=True)
class World:
    depositors: tuple[frozenset[str], ...]
    notices: tuple[str, ...]  # the account of each notice, in order of issue


ACCOUNTS = st.text(alphabet="AZ09-_.$*|", min_size=1, max_size=4)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    pool = draw(st.lists(ACCOUNTS, min_size=1, max_size=5, unique=True))
    holdings = st.frozensets(st.sampled_from(pool), max_size=3)
    return World(
        depositors=tuple(draw(st.lists(holdings, min_size=1, max_size=3))),
        notices=tuple(draw(st.lists(st.sampled_from(pool), max_size=6))),
    )


async def test_no_depositor_ever_receives_anothers_notice(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    played = 0
    for world in drawn(worlds(), 15):
        tag = uuid.uuid4().hex[:8]  # each world has accounts of its own

        def account(name: str, tag: str = tag) -> str:
            return f"{tag}:{name}"

        docs = [notice_doc(account(name), "CA-X") for name in world.notices]
        held = [frozenset(account(name) for name in holdings) for holdings in world.depositors]
        clients: list[Socket] = []
        async with contextlib.AsyncExitStack() as stack:
            for accounts in held:
                client = await stack.enter_async_context(
                    socket(herald, bearer(depositor(api, *sorted(accounts))))
                )
                await client.subscribe(MOBILE, operation_name=FEED)
                clients.append(client)
            await live_for(herald, *set().union(*held))
            await insert_notices(herald, docs)
            for client, accounts in zip(clients, held, strict=True):
                expected = [d["_id"] for d in docs if d["accountId"] in accounts]
                received = []
                for _ in expected:
                    notice = (await client.next_data())["noticeIssued"]
                    assert notice["accountId"] in accounts, (world, notice)
                    received.append(notice["id"])
                assert sorted(received) == sorted(expected), world
            # and nothing else: every notice of the batch has been routed by now
            await asyncio.gather(*(client.silent_for(0.2) for client in clients))
        played += 1
    assert played >= 10


async def test_subscriptions_end_with_the_socket(herald: RunningHerald, api: GraphQLClient) -> None:
    account = fresh("A")
    async with socket(herald, bearer(depositor(api, account))) as client:
        await client.subscribe(MOBILE, operation_name=FEED)
        await live_for(herald, account)
    await eventually(lambda: not herald.services.issued_notices.is_live_for([account]))


async def test_a_subscription_ends_when_its_token_expires(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    account = fresh("A")
    token = api.issuer.mint("dora", accounts=(account,), scopes=("notices:read",), ttl_seconds=2)
    async with socket(herald, bearer(token)) as client:
        await client.subscribe(MOBILE, operation_name=FEED)
        await live_for(herald, account)
        doc = notice_doc(account, "CA-X")
        await insert_notices(herald, [doc])
        assert (await client.next_data())["noticeIssued"]["id"] == doc["_id"]
        ended = await client.receive(timeout=5)
        assert codes(ended) == ["UNAUTHENTICATED"], ended
        assert (await client.receive())["type"] == "complete"
        await insert_notices(herald, [notice_doc(account, "CA-X")])
        await client.silent_for(0.3)


async def test_subscriptions_only_over_graphql_transport_ws(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    query = {"query": "subscription { cardPublished { id } }"}
    for accept in ("application/json", "multipart/mixed;subscriptionSpec=1.0", "text/event-stream"):
        response = await api.http.post("/graphql", json=query, headers={"Accept": accept})
        assert response.status_code == 400, (accept, response.text)
    # the legacy graphql-ws protocol (with its auth-bypass advisory) is not spoken
    url = herald.base_url.replace("http://", "ws://") + "/graphql"
    with pytest.raises((InvalidStatus, ConnectionClosed, NegotiationError)):
        async with connect(url, subprotocols=[Subprotocol("graphql-ws")]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            await ws.recv()
