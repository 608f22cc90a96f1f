"""The CardStore port's contract, run against the in-memory store and MongoDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.memory.cards import MemoryCardStore
from adapters.memory.event_store import MemoryEventStore
from adapters.memory.positions import MemoryPositionSnapshotStore
from adapters.mongo.cards import MongoCardStore
from adapters.mongo.client import connect
from adapters.mongo.transactions import TransactionSessions
from commands.handlers import CommandHandlers
from domain.commands import CommandContext
from domain.corporate_action import CorporateAction
from domain.ports import CardQuery, CardStore
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, Principal
from tests.support import DIVIDEND

OLGA = CommandContext(Principal("olga", frozenset({ROLE_OPERATOR})), "c")
IVAN = CommandContext(Principal("ivan", frozenset({ROLE_APPROVER})), "c")


@pytest.fixture(params=["memory", "mongo", "mongo-without-transactions"])
async def cards(request: pytest.FixtureRequest, mongo_uri: str) -> AsyncIterator[CardStore]:
    if request.param == "memory":
        yield MemoryCardStore()
        return
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    sessions = TransactionSessions(client[name]) if request.param == "mongo" else None
    store = MongoCardStore(client[name], sessions=sessions)
    await store.ensure_indexes()
    yield store
    await client.drop_database(name)
    await client.close()


async def _announced_and_approved(
    count: int,
) -> tuple[list[CorporateAction], list[CorporateAction]]:
    """`count` actions as announced (revision 1) and as approved (revision 2)."""
    handlers = CommandHandlers(MemoryEventStore(), MemoryPositionSnapshotStore())
    announced, approved = [], []
    for _ in range(count):
        payload = {**DIVIDEND, "reference": f"R-{uuid.uuid4().hex[:8]}"}
        announced.append((await handlers.announce(payload, OLGA)).action)
        approved.append((await handlers.approve(announced[-1].id, 1, IVAN)).action)
    return announced, approved


async def _actions(count: int, *, publish: set[int], **changes: Any) -> list[CorporateAction]:
    """`count` announced actions (oldest first); those at `publish` approved."""
    handlers = CommandHandlers(MemoryEventStore(), MemoryPositionSnapshotStore())
    states = []
    for n in range(count):
        payload = {**DIVIDEND, "reference": f"R-{uuid.uuid4().hex[:8]}", **changes}
        state = (await handlers.announce(payload, OLGA)).action
        if n in publish:
            state = (await handlers.approve(state.id, 1, IVAN)).action
        states.append(state)
    return states


async def test_save_is_guarded_by_the_stored_revision(cards: CardStore) -> None:
    [announced] = await _actions(1, publish=set())
    assert await cards.save(announced, 0)
    assert not await cards.save(announced, 0)  # a repeated first apply
    assert await cards.get(announced.id) == announced
    [published] = [s for s in await _actions(1, publish={0}) if s]
    assert await cards.get_many([announced.id, published.id, "nope"]) == {announced.id: announced}


async def test_save_many_stores_each_change_and_names_the_cards_whose_revision_moved(
    cards: CardStore,
) -> None:
    announced, approved = await _announced_and_approved(4)
    assert await cards.save_many([(s, 0) for s in announced[:3]]) == set()
    # updates of stored cards beside a new card and a repeated first apply
    changes = [(approved[0], 1), (approved[1], 1), (announced[3], 0), (announced[0], 0)]
    assert await cards.save_many(changes) == {announced[0].id}
    # a stale update beside good ones: the good ones are stored all the same
    changes = [(approved[2], 1), (approved[0], 1), (approved[3], 1)]
    assert await cards.save_many(changes) == {approved[0].id}
    assert await cards.get_many([s.id for s in announced]) == {s.id: s for s in approved}
    assert await cards.save_many(changes[::2]) == {approved[2].id, approved[3].id}  # repeated
    assert await cards.get_many([s.id for s in announced]) == {s.id: s for s in approved}


async def test_pages_newest_first_with_the_public_view_filtered(cards: CardStore) -> None:
    states = await _actions(5, publish={0, 2, 4})
    for state in states:
        assert await cards.save(state, 0)
    ids = [s.id for s in states]
    newest_first = sorted(ids, reverse=True)
    public = CardQuery(public_only=True, ids=ids)
    everyone = CardQuery(public_only=False, ids=ids)
    assert await cards.count(everyone) == 5
    assert await cards.count(public) == 3
    page, more = await cards.page(everyone, 2, None)
    assert [s.id for s in page] == newest_first[:2] and more
    page, more = await cards.page(everyone, 10, newest_first[1])
    assert [s.id for s in page] == newest_first[2:] and not more
    page, _ = await cards.page(public, 10, None)
    assert {s.id for s in page} == {ids[0], ids[2], ids[4]}


async def test_filters_read_the_terms_and_the_status(cards: CardStore) -> None:
    states = await _actions(2, publish={1}, recordDate="2026-12-20", paymentDate="2026-12-29")
    for state in states:
        await cards.save(state, 0)
    ids = [s.id for s in states]
    query = CardQuery(public_only=False, ids=ids, isin=DIVIDEND["isin"], event_types=["DVCA"])
    assert await cards.count(query) == 2
    published = states[1].status.value
    assert await cards.count(CardQuery(public_only=False, ids=ids, statuses=[published])) == 1
    in_range = CardQuery(public_only=False, ids=ids, record_date_from="2026-12-20")
    assert await cards.count(in_range) == 2
    before = CardQuery(public_only=False, ids=ids, record_date_to="2026-12-19")
    assert await cards.count(before) == 0
    assert await cards.count(CardQuery(public_only=False, ids=ids, event_types=["INTR"])) == 0
