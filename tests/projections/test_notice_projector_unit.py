"""The notices projector on the in-memory adapters: the fan-out's decisions
(one notice per holder, chunk by chunk, nothing written again on a replay),
without a store or a broker."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from adapters.memory.event_store import MemoryEventStore
from adapters.memory.notice_projection import MemoryNoticeProjectionStore
from adapters.memory.positions import MemoryPositionSnapshotStore
from adapters.memory.projection_state import MemoryProjectionState
from commands.handlers import CommandHandlers
from domain.codes import NoticeKind
from domain.commands import CommandContext
from domain.ports import NoticePlan
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, Principal
from projections.notices import NoticeProjector
from tests.support import DIVIDEND

OLGA = CommandContext(Principal("olga", frozenset({ROLE_OPERATOR})), "unit")
IVAN = CommandContext(Principal("ivan", frozenset({ROLE_APPROVER})), "unit")
HOLDERS = {f"ACC-{n}": str(n * 10) for n in range(1, 6)}


class CountedPositions(MemoryPositionSnapshotStore):
    """Counts the passes over the index for chunk boundaries."""

    passes = 0

    async def boundaries(self, snapshot_ids: Sequence[str], every: int) -> tuple[list[str], int]:
        self.passes += 1
        return await super().boundaries(snapshot_ids, every)


class WatchedNotices(MemoryNoticeProjectionStore):
    """Before each chunk is written: the fan-out's remaining accounts the
    projection state shows; the write fails at chunk `fail_at` (1-based)."""

    def __init__(self, state: MemoryProjectionState) -> None:
        super().__init__()
        self.state = state
        self.seen: list[int] = []
        self.fail_at: int | None = None

    async def reconcile_range(self, action_id: str, first: str, last: str, plan: NoticePlan) -> int:
        (status,) = await self.state.statuses()
        self.seen.append(status.fanout_accounts_remaining)
        if len(self.seen) == self.fail_at:
            raise RuntimeError("the store failed this chunk")
        return await super().reconcile_range(action_id, first, last, plan)


class World:
    def __init__(self, chunk: int = 2) -> None:
        self.events = MemoryEventStore()
        self.positions_store = positions = CountedPositions()
        self.handlers = CommandHandlers(self.events, positions)
        self.state = MemoryProjectionState()
        self.notices = WatchedNotices(self.state)
        self.projector = NoticeProjector(
            self.notices, positions, self.events, [], chunk=chunk, progress=self.state
        )
        self._projected = 0

    async def publish(self) -> str:
        payload = {**DIVIDEND, "reference": f"RU-DVCA-{uuid.uuid4().hex[:8]}"}
        action = (await self.handlers.announce(payload, OLGA)).action
        await self.handlers.approve(action.id, 1, IVAN)
        return action.id

    async def positions(self, holdings: dict[str, str]) -> None:
        payload = {
            "isin": DIVIDEND["isin"],
            "asOf": DIVIDEND["recordDate"],
            "positions": [
                {"accountId": a, "quantity": q, "taxRatePercent": "13"} for a, q in holdings.items()
            ],
        }
        await self.handlers.record_positions(payload, OLGA)

    async def project(self) -> None:
        """Apply what was recorded since the last call, as one batch."""
        batch = await self.events.read_all(self._projected, 1000)
        await self.projector.apply(batch)
        self._projected = batch[-1].sequence if batch else self._projected


async def test_every_holder_gets_one_notice_chunk_by_chunk_and_a_replay_writes_nothing() -> None:
    world = World()
    action_id = await world.publish()
    await world.positions(HOLDERS)
    await world.project()
    notices = world.notices.notices.values()
    assert sorted(n.account_id for n in notices) == sorted(HOLDERS)
    assert {(n.version, n.notice.kind, n.corporate_action_id) for n in notices} == {
        (1, NoticeKind.NEW, action_id)
    }
    assert await world.projector.reconcile(action_id) == 0  # a redelivery: all stored already


async def test_positions_recorded_before_the_approval_issue_the_same_notices() -> None:
    before, after = World(), World()
    await before.positions(HOLDERS)
    await before.project()
    await before.publish()
    await before.project()
    await after.publish()
    await after.positions(HOLDERS)
    await after.project()

    def issued(world: World) -> set[tuple[str, int, NoticeKind, str]]:
        return {
            (n.account_id, n.version, n.notice.kind, str(n.notice.content.get("eligibleQuantity")))
            for n in world.notices.notices.values()
        }

    assert issued(before) == issued(after) and len(issued(before)) == len(HOLDERS)


async def test_an_approval_before_any_position_issues_nothing_and_fails_nothing() -> None:
    """The usual order in the back office: approve, then record positions.
    The approval alone has no holder to fan out to; it must not fail (a
    failure would park the approval as a dead letter)."""
    world = World()
    action_id = await world.publish()
    await world.project()  # raised "zip() argument 2 is longer" on no positions
    assert await world.projector.reconcile(action_id) == 0
    await world.positions(HOLDERS)
    await world.project()
    assert await world.projector.reconcile(action_id) == 0  # all issued by the batch


async def test_a_snapshot_no_larger_than_a_chunk_is_read_in_one_range_without_boundaries() -> None:
    """Its event says how many accounts it lists: one range read, no pass
    over the index first; a larger one (chunks of 2 above) takes the pass."""
    world = World(chunk=len(HOLDERS))
    action_id = await world.publish()
    await world.positions(HOLDERS)
    await world.project()
    assert sorted(n.account_id for n in world.notices.notices.values()) == sorted(HOLDERS)
    assert world.positions_store.passes == 0
    assert await world.projector.reconcile(action_id) == 0
    smaller = World(chunk=len(HOLDERS) - 1)
    await smaller.publish()
    await smaller.positions(HOLDERS)
    await smaller.project()
    assert len(smaller.notices.notices) == len(HOLDERS)
    assert smaller.positions_store.passes == 1


async def test_the_accounts_left_in_a_fanout_are_noted_chunk_by_chunk_until_it_is_over() -> None:
    """What `projections { fanoutAccountsRemaining }` reads while the
    approval's fan-out runs (its `lag` is 0 meanwhile): 5 holders in chunks of
    2 leave 5, 3, then 1 before each chunk, and nothing once it is over."""
    world = World(chunk=2)
    await world.positions(HOLDERS)
    await world.project()
    await world.publish()
    await world.project()
    assert world.notices.seen == [5, 3, 1]
    (status,) = await world.state.statuses()
    assert status.fanout_accounts_remaining == 0


async def test_a_failed_fanout_keeps_its_note_until_it_runs_again() -> None:
    """Its holders still lack their notices: the note stays (a retried
    batch, a redelivery or a dead-letter replay runs it again)."""
    world = World(chunk=2)
    await world.positions(HOLDERS)
    await world.project()
    action_id = await world.publish()
    world.notices.fail_at = 2
    with pytest.raises(RuntimeError, match="failed this chunk"):
        await world.project()
    (status,) = await world.state.statuses()
    assert status.fanout_accounts_remaining == 3
    world.notices.fail_at = None
    assert await world.projector.reconcile(action_id) == 3  # the rest of the holders
    (status,) = await world.state.statuses()
    assert status.fanout_accounts_remaining == 0
