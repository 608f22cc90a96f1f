"""The notices projector on the in-memory adapters: the fan-out's decisions
(one notice per holder, chunk by chunk, nothing written again on a replay),
without a store or a broker."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from adapters.memory.event_store import MemoryEventStore
from adapters.memory.notice_projection import MemoryNoticeProjectionStore
from adapters.memory.positions import MemoryPositionSnapshotStore
from commands.handlers import CommandHandlers
from domain.codes import NoticeKind
from domain.commands import CommandContext
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


class World:
    def __init__(self, chunk: int = 2) -> None:
        self.events = MemoryEventStore()
        self.positions_store = positions = CountedPositions()
        self.handlers = CommandHandlers(self.events, positions)
        self.notices = MemoryNoticeProjectionStore()
        self.projector = NoticeProjector(self.notices, positions, self.events, [], chunk=chunk)
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
