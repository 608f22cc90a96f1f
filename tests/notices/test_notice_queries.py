"""The depositor's side of notices over real HTTP with real tokens: the
mobile contract's MobileMyNotices, MobileNotice and MobileAcknowledge.

Notices are written straight into the `notices` read model (the shape the
notices projector writes), so these tests pin the read side and the row-level
rule (invariant 5) independently of the projector. One Herald on Tansu serves
the module: nothing here is about the broker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import strategies as st
from pymongo import monitoring

from adapters.auth.dev_issuer import DevIssuer
from adapters.mongo.cards import MongoCardStore
from commands.ids import new_action_id
from domain import corporate_action as ca
from domain import events as ev
from domain.events import EventEnvelope
from domain.validation import parse_terms, terms_to_payload
from queries.paging import encode_cursor
from tests.builders import T0, envelope, insert_notices, notice_doc
from tests.support import (
    DIVIDEND,
    Broker,
    GraphQLClient,
    RunningHerald,
    drawn,
    herald_settings,
    operation_document,
)


async def project_acknowledgement(herald: RunningHerald, event: EventEnvelope) -> None:
    """Hand the event to the notices projector, as its consumer would."""
    projector = next(p for p in herald.services.projectors() if p.name == "notices")
    await projector.apply([event])


MOBILE = operation_document("mobile", without_subscriptions=True)
PORTAL = operation_document("portal")
SCOPE = "notices:read"


# --- store round trips -------------------------------------------------------


class StoreRoundTrips(monitoring.CommandListener):
    """Counts the commands the API sends to the read models of one database.

    Registered globally (PyMongo applies global listeners to clients created
    afterwards); it counts only while armed and only for its database, so
    other suites' clients and the background relay are not counted — nor the
    API's change streams (the subscription feeds and the cache watermark),
    whose cursors it recognises from the `$changeStream` aggregate opening them.
    """

    READ_MODELS = frozenset({"notices", "cards", "projection_tracking"})

    def __init__(self) -> None:
        self.database: str | None = None
        self.armed = False
        self.commands: list[tuple[str, str]] = []
        self._opening_streams: set[int] = set()
        self._stream_cursors: set[int] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if event.command_name == "aggregate" and any(
            "$changeStream" in stage for stage in command.get("pipeline", [])
        ):
            self._opening_streams.add(event.request_id)
            return
        if event.command_name == "getMore" and command.get("getMore") in self._stream_cursors:
            return
        if not self.armed or event.database_name != self.database:
            return
        task = asyncio.current_task()  # PyMongo calls listeners in the sending task
        if task is not None and task.get_name().endswith(":run"):
            return  # a supervised background task (projector, checkpoint, relay)
        target = command.get("collection") if event.command_name == "getMore" else None
        target = target or command.get(event.command_name)
        if isinstance(target, str) and target in self.READ_MODELS:
            self.commands.append((event.command_name, target))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.request_id in self._opening_streams:
            self._opening_streams.discard(event.request_id)
            self._stream_cursors.add(event.reply.get("cursor", {}).get("id"))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture(scope="module")
def round_trips() -> StoreRoundTrips:
    listener = StoreRoundTrips()
    monitoring.register(listener)
    return listener


# --- one Herald for the module --------------------------------------------------


@pytest.fixture(scope="module")
async def herald(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer, round_trips: StoreRoundTrips
) -> AsyncIterator[RunningHerald]:
    running = RunningHerald(herald_settings(tansu_broker, mongo_uri, issuer), issuer)
    round_trips.database = running.settings.mongo_database
    await running.start()
    await running.services.notices.ensure_indexes()
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def api(herald: RunningHerald) -> AsyncIterator[GraphQLClient]:
    async with GraphQLClient.of(herald) as client:
        yield client


def depositor(api: GraphQLClient, *accounts: str, sub: str | None = None) -> str:
    return api.token(sub or f"depositor-{uuid.uuid4().hex[:6]}", accounts=accounts, scopes=(SCOPE,))


def fresh(prefix: str) -> str:
    """Account ids unique to one test: suites share the module's database."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def published_action(reference: str) -> ca.CorporateAction:
    """A published corporate action, folded by the same code the card projector uses."""
    action_id = new_action_id()
    terms = terms_to_payload(parse_terms({**DIVIDEND, "reference": reference}))
    state = ca.apply(None, envelope(action_id, 1, ca.announce(terms), "olga"))
    return ca.apply(state, envelope(action_id, 2, ca.approve(state, action_id, 1, "ivan"), "ivan"))


async def insert_published_cards(herald: RunningHerald, count: int) -> list[str]:
    cards = MongoCardStore(herald.services.db)
    ids = []
    for n in range(count):
        state = published_action(f"RU-RT-{uuid.uuid4().hex[:6]}-{n}")
        assert await cards.save(state, 0)
        ids.append(state.id)
    return ids


async def announce_and_publish(api: GraphQLClient, reference: str) -> str:
    """A real corporate action through the write side and the card projector."""
    operator = api.token("olga", "ca-operator")
    approver = api.token("ivan", "ca-approver")
    announced = await api.data(
        PORTAL,
        {"input": {**DIVIDEND, "reference": reference}},
        token=operator,
        operation_name="PortalAnnounce",
    )
    action_id: str = announced["announceCorporateAction"]["corporateAction"]["id"]
    approved = await api.data(
        PORTAL,
        {"input": {"id": action_id, "version": 1}},
        token=approver,
        operation_name="PortalApprove",
    )
    await api.data(  # waits until the card projector has the publication
        PORTAL,
        {"id": action_id, "consistencyToken": approved["approvePublication"]["consistencyToken"]},
        token=operator,
        operation_name="PortalCard",
    )
    return action_id


async def my_notices(
    api: GraphQLClient, token: str, *, first: int | None = None, unread_only: bool = False
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every page of MobileMyNotices: the nodes in order, and each page's totalCount."""
    nodes: list[dict[str, Any]] = []
    totals: list[int] = []
    after = None
    while True:
        data = await api.data(
            MOBILE,
            {"first": first, "after": after, "unreadOnly": unread_only},
            token=token,
            operation_name="MobileMyNotices",
        )
        connection = data["myNotices"]
        totals.append(connection["totalCount"])
        nodes += [edge["node"] for edge in connection["edges"]]
        if connection["edges"]:
            assert connection["pageInfo"]["endCursor"] == connection["edges"][-1]["cursor"]
        if not connection["pageInfo"]["hasNextPage"]:
            return nodes, totals
        after = connection["pageInfo"]["endCursor"]


def newest_first(docs: Sequence[dict[str, Any]]) -> list[str]:
    ordered = sorted(docs, key=lambda d: (d["issuedAt"], d["_id"]), reverse=True)
    return [d["_id"] for d in ordered]


def codes(result: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in result.get("errors") or []]


# --- the contract operations ---------------------------------------------------


async def test_my_notices_pages_newest_first_and_shows_the_public_card(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    reference = f"RU-NOTICE-{uuid.uuid4().hex[:6]}"
    action_id = await announce_and_publish(api, reference)
    mine, also_mine, theirs = fresh("A"), fresh("B"), fresh("C")
    docs = [
        notice_doc(mine, action_id, T0),
        notice_doc(also_mine, action_id, T0),  # same instant: the id breaks the tie
        notice_doc(mine, action_id, T0 + timedelta(seconds=1), securities=True),
        notice_doc(
            mine,
            action_id,
            T0 + timedelta(seconds=2),
            version=2,
            kind="UPDATE",
            changed=["paymentDate", "entitlement"],
        ),
        notice_doc(also_mine, action_id, T0 - timedelta(days=1)),
    ]
    await insert_notices(herald, [*docs, notice_doc(theirs, action_id, T0 + timedelta(seconds=5))])
    token = depositor(api, mine, also_mine)

    nodes, totals = await my_notices(api, token, first=2)
    assert [n["id"] for n in nodes] == newest_first(docs)
    assert totals == [5, 5, 5]

    update = nodes[0]
    assert update["kind"] == "UPDATE" and update["version"] == 2
    assert update["changedFields"] == ["paymentDate", "entitlement"]
    assert update["accountId"] == mine
    assert update["eligibleQuantity"] == "100"
    assert update["issuedAt"] == "2026-12-16T09:00:02+00:00"
    assert update["acknowledgedAt"] is None
    assert update["entitlement"] == {
        "gross": {"amount": "3330.00", "currency": "RUB"},
        "tax": {"amount": "432.90", "currency": "RUB"},
        "net": {"amount": "2897.10", "currency": "RUB"},  # rounded to the minor unit
        "securities": None,
    }
    assert update["corporateAction"] == {
        "id": action_id,
        "reference": reference,
        "eventType": "DVCA",
        "security": {"isin": DIVIDEND["isin"], "name": DIVIDEND["securityName"]},
        "recordDate": "2026-12-15",
        "paymentDate": "2026-12-29",
        "responseDeadline": None,
    }
    securities = nodes[1]
    assert securities["entitlement"] == {
        "gross": None,
        "tax": None,
        "net": None,
        "securities": "3",
    }


async def test_cursors_stay_valid_while_new_notices_arrive(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    account = fresh("A")
    docs = [notice_doc(account, "CA-X", T0 + timedelta(seconds=n)) for n in range(4)]
    await insert_notices(herald, docs)
    token = depositor(api, account)
    first_page = await api.data(MOBILE, {"first": 2}, token=token, operation_name="MobileMyNotices")
    after = first_page["myNotices"]["pageInfo"]["endCursor"]

    await insert_notices(herald, [notice_doc(account, "CA-X", T0 + timedelta(hours=1))])
    rest = await api.data(
        MOBILE, {"first": 10, "after": after}, token=token, operation_name="MobileMyNotices"
    )
    connection = rest["myNotices"]
    assert [e["node"]["id"] for e in connection["edges"]] == newest_first(docs)[2:]
    assert connection["totalCount"] == 5
    assert connection["pageInfo"]["hasNextPage"] is False


async def test_unread_only(herald: RunningHerald, api: GraphQLClient) -> None:
    account = fresh("A")
    read = notice_doc(account, "CA-X", T0, acknowledged_at=T0 + timedelta(hours=1))
    unread = [notice_doc(account, "CA-X", T0 + timedelta(seconds=n)) for n in (1, 2)]
    await insert_notices(herald, [read, *unread])
    token = depositor(api, account)

    nodes, totals = await my_notices(api, token, first=1, unread_only=True)
    assert [n["id"] for n in nodes] == newest_first(unread)
    assert set(totals) == {2}
    everything, _ = await my_notices(api, token)
    assert [n["id"] for n in everything] == newest_first([read, *unread])
    assert everything[-1]["acknowledgedAt"] == "2026-12-16T10:00:00+00:00"


async def test_notice_answers_only_for_your_accounts(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    mine, theirs = fresh("A"), fresh("B")
    own = notice_doc(mine, "CA-X", T0)
    other = notice_doc(theirs, "CA-X", T0)
    await insert_notices(herald, [own, other])
    token = depositor(api, mine)

    found = await api.data(MOBILE, {"id": own["_id"]}, token=token, operation_name="MobileNotice")
    assert found["notice"]["id"] == own["_id"]
    assert found["notice"]["corporateAction"] is None  # no such card: nothing to show

    for missing in (other["_id"], "NT-does-not-exist"):
        result = await api.execute(
            MOBILE, {"id": missing}, token=token, operation_name="MobileNotice"
        )
        assert result == {"data": {"notice": None}}  # another's notice is simply not found


async def test_a_draft_card_is_not_shown_through_a_notice(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    operator = api.token("olga", "ca-operator")
    announced = await api.data(
        PORTAL,
        {"input": {**DIVIDEND, "reference": f"RU-DRAFT-{uuid.uuid4().hex[:6]}"}},
        token=operator,
        operation_name="PortalAnnounce",
    )
    draft = announced["announceCorporateAction"]
    await api.data(  # the card projector has the draft
        PORTAL,
        {"id": draft["corporateAction"]["id"], "consistencyToken": draft["consistencyToken"]},
        token=operator,
        operation_name="PortalCard",
    )
    account = fresh("A")
    doc = notice_doc(account, draft["corporateAction"]["id"], T0)
    await insert_notices(herald, [doc])
    found = await api.data(
        MOBILE, {"id": doc["_id"]}, token=depositor(api, account), operation_name="MobileNotice"
    )
    assert found["notice"]["corporateAction"] is None


async def test_acknowledge_records_one_event_per_version(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    action_id = (await insert_published_cards(herald, 1))[0]
    account = fresh("A")
    doc = notice_doc(account, action_id, T0)
    await insert_notices(herald, [doc])
    notice_id = doc["_id"]
    token = depositor(api, account, sub="dora")

    acked = (
        await api.data(MOBILE, {"id": notice_id}, token=token, operation_name="MobileAcknowledge")
    )["acknowledgeNotice"]
    assert acked["notice"]["id"] == notice_id
    assert acked["notice"]["acknowledgedAt"] is not None
    assert acked["consistencyToken"]

    [stored] = await herald.services.events.load(notice_id)
    assert stored.event_name == ev.NOTICE_ACKNOWLEDGED
    assert stored.aggregate_type == ev.AGGREGATE_NOTICE
    assert stored.version == 1 and stored.actor == "dora"
    assert dict(stored.payload) == {
        "noticeId": notice_id,
        "noticeVersion": 1,
        "corporateActionId": action_id,
        "accountId": account,
    }
    assert datetime.fromisoformat(acked["notice"]["acknowledgedAt"]) == stored.occurred_at

    # The projection of the event (the notices projector calls this).
    await project_acknowledgement(herald, stored)
    await project_acknowledgement(herald, stored)  # a redelivery
    projected = await herald.services.db["notices"].find_one({"_id": notice_id})
    assert projected is not None and projected["acknowledgedAt"] == stored.occurred_at

    # The same version again: nothing new is recorded, the answer is the first one.
    again = (
        await api.data(MOBILE, {"id": notice_id}, token=token, operation_name="MobileAcknowledge")
    )["acknowledgeNotice"]
    assert again["consistencyToken"] == acked["consistencyToken"]
    assert again["notice"]["acknowledgedAt"] == acked["notice"]["acknowledgedAt"]
    assert len(await herald.services.events.load(notice_id)) == 1

    # Once the notices projection has applied it, the token reads your write.
    await herald.services.projection_state.record_applied("notices", {notice_id: 1})
    read_back = await api.data(
        "query($id: ID!, $t: String) { notice(id: $id, consistencyToken: $t) { acknowledgedAt } }",
        {"id": notice_id, "t": acked["consistencyToken"]},
        token=token,
    )
    assert read_back["notice"]["acknowledgedAt"] is not None
    stats = await api.data(
        PORTAL,
        {"id": action_id},
        token=api.token("olga", "ca-operator"),
        operation_name="PortalCard",
    )
    assert stats["corporateAction"]["noticeStats"] == {
        "total": 1,
        "delivered": 0,
        "acknowledged": 1,
    }

    # An update is issued (the projector bumps the version and clears the ack):
    # it is unread until acknowledged in its turn, and a late replay of the
    # first acknowledgement does not mark it read.
    await herald.services.db["notices"].update_one(
        {"_id": notice_id},
        {"$set": {"version": 2, "kind": "UPDATE", "acknowledgedAt": None}},
    )
    await project_acknowledgement(herald, stored)
    unread, _ = await my_notices(api, token, unread_only=True)
    assert [n["id"] for n in unread] == [notice_id]
    await api.data(MOBILE, {"id": notice_id}, token=token, operation_name="MobileAcknowledge")
    _, second = await herald.services.events.load(notice_id)
    assert (second.version, second.payload["noticeVersion"]) == (2, 2)
    await project_acknowledgement(herald, second)
    projected = await herald.services.db["notices"].find_one({"_id": notice_id})
    assert projected is not None and projected["acknowledgedAt"] == second.occurred_at


async def test_acknowledging_anothers_notice_is_not_found(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    other = notice_doc(fresh("B"), "CA-X", T0)
    await insert_notices(herald, [other])
    token = depositor(api, fresh("A"))
    for notice_id in (other["_id"], "NT-does-not-exist"):
        result = await api.execute(
            MOBILE, {"id": notice_id}, token=token, operation_name="MobileAcknowledge"
        )
        assert codes(result) == ["NOT_FOUND"]
        assert result["data"] is None
        assert await herald.services.events.load(notice_id) == []


async def test_without_the_scope_or_a_token(herald: RunningHerald, api: GraphQLClient) -> None:
    account = fresh("A")
    doc = notice_doc(account, "CA-X", T0)
    await insert_notices(herald, [doc])
    no_scope = api.token("olga", "ca-operator", accounts=(account,))
    for token, code in ((None, "UNAUTHENTICATED"), (no_scope, "FORBIDDEN")):
        for operation, variables in (
            ("MobileMyNotices", {}),
            ("MobileNotice", {"id": doc["_id"]}),
            ("MobileAcknowledge", {"id": doc["_id"]}),
        ):
            result = await api.execute(MOBILE, variables, token=token, operation_name=operation)
            assert codes(result) == [code], (operation, result)
            assert not any((result["data"] or {}).values()), result
    assert await herald.services.events.load(doc["_id"]) == []

    nobody = depositor(api)  # the scope, but no accounts: nothing to see
    nodes, totals = await my_notices(api, nobody)
    assert nodes == [] and totals == [0]


async def test_bad_paging_arguments(api: GraphQLClient) -> None:
    token = depositor(api, fresh("A"))
    for variables, field in (
        ({"first": 101}, "first"),
        ({"first": -1}, "first"),
        ({"after": "bm90IGEgY3Vyc29y"}, "after"),
        ({"after": "!!"}, "after"),
    ):
        result = await api.execute(MOBILE, variables, token=token, operation_name="MobileMyNotices")
        assert codes(result) == ["BAD_USER_INPUT"], result
        assert result["errors"][0]["extensions"]["field"] == field
    # A card cursor is not a notice cursor.
    result = await api.execute(
        MOBILE,
        {"after": encode_cursor("ca", new_action_id())},
        token=token,
        operation_name="MobileMyNotices",
    )
    assert codes(result) == ["BAD_USER_INPUT"]


# --- no N+1 ------------------------------------------------------------------------


async def test_store_round_trips_do_not_grow_with_the_page(
    herald: RunningHerald, api: GraphQLClient, round_trips: StoreRoundTrips
) -> None:
    account = fresh("A")
    action_ids = await insert_published_cards(herald, 100)
    await insert_notices(
        herald,
        [
            notice_doc(account, action_id, T0 + timedelta(seconds=n))
            for n, action_id in enumerate(action_ids)
        ],
    )
    token = depositor(api, account)

    async def count(first: int) -> int:
        round_trips.commands.clear()
        round_trips.armed = True
        try:
            data = await api.data(
                MOBILE, {"first": first}, token=token, operation_name="MobileMyNotices"
            )
        finally:
            round_trips.armed = False
        edges = data["myNotices"]["edges"]
        assert len(edges) == first
        assert all(edge["node"]["corporateAction"] is not None for edge in edges)
        return len(round_trips.commands)

    small, large = await count(10), await count(100)
    # one page query, one count, one batched card lookup
    assert small == large <= 3, round_trips.commands


# --- the row-level rule, as a property --------------------------------------------


@dataclass(frozen=True)
class World:
    """Accounts, the depositors holding some of them, and notices of any account."""

    depositors: tuple[frozenset[str], ...]
    notices: tuple[tuple[str, int, bool], ...]  # (account, issued second, acknowledged)
    page: int
    unread_only: bool


# Account ids with characters a careless query might treat specially.
ACCOUNTS = st.text(alphabet="AZ09-_.$*|", min_size=1, max_size=4)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    pool = draw(st.lists(ACCOUNTS, min_size=1, max_size=6, unique=True))
    holdings = st.frozensets(st.sampled_from(pool), max_size=3)
    notice = st.tuples(st.sampled_from(pool), st.integers(0, 3), st.booleans())
    return World(
        depositors=tuple(draw(st.lists(holdings, min_size=1, max_size=3))),
        notices=tuple(draw(st.lists(notice, max_size=8))),
        page=draw(st.integers(1, 4)),
        unread_only=draw(st.booleans()),
    )


async def test_no_depositor_ever_receives_anothers_notice(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    played = 0
    for world in drawn(worlds(), 25):
        tag = uuid.uuid4().hex[:8]  # each world gets accounts of its own

        def account(name: str, tag: str = tag) -> str:
            return f"{tag}:{name}"

        docs = [
            notice_doc(
                account(name),
                "CA-X",
                T0 + timedelta(seconds=second),
                acknowledged_at=T0 if acknowledged else None,
            )
            for name, second, acknowledged in world.notices
        ]
        await insert_notices(herald, docs)
        for holdings in world.depositors:
            accounts = {account(name) for name in holdings}
            token = depositor(api, *sorted(accounts))
            visible = [
                d
                for d in docs
                if d["accountId"] in accounts
                and not (world.unread_only and d["acknowledgedAt"] is not None)
            ]
            nodes, totals = await my_notices(
                api, token, first=world.page, unread_only=world.unread_only
            )
            assert all(n["accountId"] in accounts for n in nodes), (world, nodes)
            assert [n["id"] for n in nodes] == newest_first(visible), world
            assert set(totals) == {len(visible)}, world

            if docs:  # every notice of the world by id: only one's own answer
                lookup = " ".join(
                    f'n{i}: notice(id: "{d["_id"]}") {{ id accountId }}' for i, d in enumerate(docs)
                )
                answers = await api.data(f"{{ {lookup} }}", {}, token=token)
                for i, d in enumerate(docs):
                    answer = answers[f"n{i}"]
                    if d["accountId"] in accounts:
                        assert answer == {"id": d["_id"], "accountId": d["accountId"]}, world
                    else:
                        assert answer is None, world
        played += 1
    assert played >= 10  # hypothesis really drew worlds
