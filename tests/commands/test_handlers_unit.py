"""CommandHandlers on the in-memory adapters: the write side's decisions,
without a store or a broker (milliseconds per test)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.memory.event_store import MemoryEventStore
from adapters.memory.positions import MemoryPositionSnapshotStore
from commands.handlers import CommandHandlers
from domain.codes import NoticeKind
from domain.commands import CommandContext, RequestCommand
from domain.errors import Forbidden, VersionConflict
from domain.events import CommandOrigin
from domain.ports import StoredNotice
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


async def test_the_request_hears_whether_its_answer_is_its_stored_event(
    handlers: CommandHandlers,
) -> None:
    origin = CommandOrigin(uuid.uuid4().hex, '["olga","k2"]', "f" * 64)
    first = RequestCommand(origin)
    await handlers.announce(_dividend(), _ctx(OLGA, first))
    assert first.outcome.stored and not first.outcome.rebuilt and first.outcome.rebuildable
    repeat = RequestCommand(origin, resumed=True)
    await handlers.announce(_dividend(), _ctx(OLGA, repeat))  # (the body is the key's)
    assert repeat.outcome.stored and repeat.outcome.rebuilt

    refused = RequestCommand(CommandOrigin(uuid.uuid4().hex, '["olga","k3"]', "f" * 64))
    with pytest.raises(InvalidInput):
        await handlers.announce(_dividend(isin="XX"), _ctx(OLGA, refused))
    assert not refused.outcome.stored  # nothing to rebuild from: recorded


class _Notices:
    """The notices read model as acknowledging reads it: one notice, re-issuable."""

    def __init__(self, notice: StoredNotice) -> None:
        self.notice = notice

    async def get_for_accounts(
        self, notice_id: str, accounts: Collection[str]
    ) -> StoredNotice | None:
        found = notice_id == self.notice.notice_id and self.notice.account_id in accounts
        return self.notice if found else None


async def test_a_resumed_acknowledgement_rebuilds_the_first_answer_from_its_event(
    handlers: CommandHandlers, store: MemoryEventStore
) -> None:
    dora = Principal("dora", accounts=frozenset({"ACC-1"}))
    notices = _Notices(
        StoredNotice("NT1", "CA1", "ACC-1", 1, NoticeKind.NEW, datetime(2026, 12, 1, tzinfo=UTC))
    )
    origin = CommandOrigin(uuid.uuid4().hex, '["dora","k"]', "f" * 64)
    first = await handlers.acknowledge_notice("NT1", _ctx(dora, RequestCommand(origin)), notices)
    assert first.notice.acknowledged_at is not None

    repeat = RequestCommand(origin, resumed=True)
    again = await handlers.acknowledge_notice("NT1", _ctx(dora, repeat), notices)
    assert again == first and repeat.outcome.rebuilt

    # re-issued since (an UPDATE): that version's content is gone; the repeat
    # shows the notice as it now stands, and acknowledges nothing new
    notices.notice = replace(notices.notice, version=2, kind=NoticeKind.UPDATE)
    later = await handlers.acknowledge_notice(
        "NT1", _ctx(dora, RequestCommand(origin, resumed=True)), notices
    )
    assert later.notice.version == 2 and later.notice.acknowledged_at is None
    assert later.token == first.token
    assert len(await store.load("NT1")) == 1
