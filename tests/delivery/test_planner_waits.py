"""The planner waits for preference changes stored before a notice's issue
(DESIGN invariant: a notice goes where the depositor's preferences in force at
its issue say), on the in-memory adapters: the waiting is the planner's own
logic, the stores' behaviour is covered by tests/contracts/."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from adapters.channels.push import PushChannel
from adapters.memory.deliveries import MemoryDeliveryLog
from adapters.memory.event_store import MemoryEventStore
from adapters.memory.notices import MemoryNoticeStore
from adapters.memory.preferences import MemoryPreferenceStore
from adapters.memory.projection_state import MemoryProjectionState
from delivery.dispatcher import DeliveryPlanner, PreferencesBehind
from domain import events as ev
from domain.codes import NoticeKind
from domain.consistency import PREFERENCES_PROJECTION
from domain.delivery import IssuedNotice, notice_issued_event
from domain.ports import is_transient
from domain.preferences import DeliveryChannel, Preferences, preferences_aggregate_id

AT = datetime(2026, 12, 16, tzinfo=UTC)
ACCOUNT = "40817810000000000001"


class Stack:
    def __init__(self, wait_seconds: float = 10.0) -> None:
        self.record = MemoryEventStore()
        self.projections = MemoryProjectionState()
        self.preferences = MemoryPreferenceStore()
        self.deliveries = MemoryDeliveryLog()
        self.push = PushChannel("http://127.0.0.1:9/push")  # planning sends nothing
        self.planner = DeliveryPlanner(
            self.deliveries,
            self.preferences,
            MemoryNoticeStore(),
            {DeliveryChannel.PUSH: self.push},
            [],
            record=self.record,
            projections=self.projections,
            preferences_wait_seconds=wait_seconds,
        )

    async def store_change(self, version: int, token: str) -> ev.EventEnvelope:
        """A preferences change as the command stores it (not yet projected)."""
        chosen = Preferences(ACCOUNT, (DeliveryChannel.PUSH,), push_token=token)
        [stored] = await self.record.append(
            [
                ev.EventEnvelope(
                    event_id=f"pref-{version}",
                    event_name=ev.NOTIFICATION_PREFERENCES_SET,
                    aggregate_type=ev.AGGREGATE_PREFERENCES,
                    aggregate_id=preferences_aggregate_id(ACCOUNT),
                    version=version,
                    occurred_at=AT,
                    actor="depositor",
                    correlation_id="c",
                    payload=chosen.to_payload(),
                )
            ]
        )
        return stored

    async def project(self, change: ev.EventEnvelope) -> None:
        """What the preferences projector does with a change."""
        await self.preferences.save(
            Preferences.from_payload(change.payload), change.version, change.sequence, AT
        )
        await self.projections.record_applied(
            PREFERENCES_PROJECTION, {change.aggregate_id: change.version}
        )

    async def issue(self, notice_id: str) -> ev.EventEnvelope:
        notice = IssuedNotice(notice_id, 1, NoticeKind.NEW, ACCOUNT, "CA1", 1, AT, {})
        [stored] = await self.record.append([notice_issued_event(notice, AT)])
        return stored


async def test_a_change_stored_before_the_issue_is_waited_for_and_decides() -> None:
    stack = Stack()
    await stack.project(await stack.store_change(1, "tok-old"))
    change = await stack.store_change(2, "tok-new")  # stored, not yet projected
    issued = await stack.issue("NT-1")
    planning = asyncio.create_task(stack.planner.apply([issued]))
    await asyncio.sleep(0.3)
    assert not planning.done(), "planned before the preferences in force were projected"
    assert await stack.deliveries.of_version("NT-1", 1) == []
    await stack.project(change)
    await asyncio.wait_for(planning, timeout=5)
    [planned] = await stack.deliveries.of_version("NT-1", 1)
    assert planned.address == "tok-new"
    await stack.push.close()


async def test_a_change_stored_after_the_issue_is_not_waited_for() -> None:
    stack = Stack()
    await stack.project(await stack.store_change(1, "tok-at-issue"))
    issued = await stack.issue("NT-2")
    await stack.store_change(2, "tok-later")  # after the issue, never projected here
    await asyncio.wait_for(stack.planner.apply([issued]), timeout=5)
    [planned] = await stack.deliveries.of_version("NT-2", 1)
    assert planned.address == "tok-at-issue"
    await stack.push.close()


async def test_a_projection_that_stays_behind_fails_the_batch_as_transient() -> None:
    stack = Stack(wait_seconds=0.2)
    await stack.store_change(1, "tok-never-projected")
    issued = await stack.issue("NT-3")
    with pytest.raises(PreferencesBehind) as raised:
        await stack.planner.apply([issued])
    assert is_transient(raised.value)  # the runner retries it, readiness shows it
    assert "preferences:" in str(raised.value)
    assert await stack.deliveries.of_version("NT-3", 1) == []
    await stack.push.close()


async def test_accounts_without_preference_changes_plan_at_once() -> None:
    stack = Stack(wait_seconds=0.0)
    issued = replace(await stack.issue("NT-4"))
    await stack.planner.apply([issued])  # no change stored: no wait, no error
    assert await stack.deliveries.of_version("NT-4", 1) == []  # nothing outbound by default
    await stack.push.close()
