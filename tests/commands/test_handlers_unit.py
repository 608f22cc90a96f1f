"""CommandHandlers on the in-memory adapters: the write side's decisions,
without a store or a broker (milliseconds per test)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from adapters.memory.event_store import MemoryEventStore
from adapters.memory.positions import MemoryPositionSnapshotStore
from commands.handlers import CommandHandlers
from domain.commands import CommandContext, RequestCommand
from domain.errors import Forbidden, VersionConflict
from domain.events import CommandOrigin
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, Principal
from domain.validation import InvalidInput
from tests.support import DIVIDEND

OLGA = Principal("olga", frozenset({ROLE_OPERATOR}))
IVAN = Principal("ivan", frozenset({ROLE_APPROVER}))


def _ctx(principal: Principal, command: RequestCommand | None = None) -> CommandContext:
    return CommandContext(principal, "test", command)


def _dividend(**changes: Any) -> dict[str, Any]:
    return {**DIVIDEND, "reference": f"RU-DVCA-{uuid.uuid4().hex[:8]}", **changes}


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore()


@pytest.fixture
def handlers(store: MemoryEventStore) -> CommandHandlers:
    return CommandHandlers(store, MemoryPositionSnapshotStore())


async def test_announce_then_approve_by_another_publishes_version_1(
    handlers: CommandHandlers, store: MemoryEventStore
) -> None:
    announced = await handlers.announce(_dividend(), _ctx(OLGA))
    assert announced.version == 1
    approved = await handlers.approve(announced.action.id, 1, _ctx(IVAN))
    assert approved.version == 1
    events = await store.load(announced.action.id)
    assert [e.actor for e in events] == ["olga", "ivan"]
    assert approved.token.sequence == events[-1].sequence


async def test_the_author_may_not_approve_and_nothing_is_stored(
    handlers: CommandHandlers, store: MemoryEventStore
) -> None:
    announced = await handlers.announce(_dividend(), _ctx(OLGA))
    with pytest.raises(Forbidden, match="four eyes"):
        await handlers.approve(announced.action.id, 1, _ctx(OLGA))
    assert len(await store.load(announced.action.id)) == 1


async def test_a_reference_is_taken_once(handlers: CommandHandlers) -> None:
    payload = _dividend()
    await handlers.announce(payload, _ctx(OLGA))
    with pytest.raises(InvalidInput) as refused:
        await handlers.announce(payload, _ctx(OLGA))
    assert [p.path for p in refused.value.problems] == [("reference",)]


async def test_an_amend_of_a_stale_version_conflicts(handlers: CommandHandlers) -> None:
    announced = await handlers.announce(_dividend(), _ctx(OLGA))
    action_id = announced.action.id
    await handlers.amend(action_id, 1, {"securityName": "renamed"}, _ctx(OLGA))
    with pytest.raises(VersionConflict):
        await handlers.amend(action_id, 1, {"securityName": "again"}, _ctx(OLGA))


async def test_invalid_terms_store_nothing(
    handlers: CommandHandlers, store: MemoryEventStore
) -> None:
    with pytest.raises(InvalidInput):
        await handlers.announce(_dividend(grossRate=None), _ctx(OLGA))
    assert await store.read_all(0, 10) == []


async def test_a_resumed_command_answers_from_its_stored_event_without_deciding_again(
    handlers: CommandHandlers, store: MemoryEventStore
) -> None:
    origin = CommandOrigin(uuid.uuid4().hex, '["olga","k1"]', "f" * 64)
    payload = _dividend()
    first = await handlers.announce(payload, _ctx(OLGA, RequestCommand(origin)))
    again = await handlers.announce(payload, _ctx(OLGA, RequestCommand(origin, resumed=True)))
    assert again.action.id == first.action.id and again.version == first.version
    assert len(await store.read_all(0, 10)) == 1  # decided and stored once


async def test_an_anonymous_caller_cannot_command(handlers: CommandHandlers) -> None:
    with pytest.raises(Forbidden):
        await handlers.announce(_dividend(), _ctx(Principal()))
