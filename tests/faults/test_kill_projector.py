"""Scale-out: two projector processes (`herald worker`) share the partitions of
each projector's consumer group; SIGKILL the one fanning out notices in the
middle of its batch, and the survivor finishes the job — nothing lost, nothing
duplicated, nothing re-issued (invariant 4).

The API runs in the test process with projectors off (relay on). Which worker
does the fan-out is read from the workers' own logs: aiokafka logs "Setting
newly assigned partitions … for group …" at every rebalance, and the
positions event's partition is the producer's (murmur2 of the aggregate id).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import DefaultPartitioner

from adapters.auth.dev_issuer import DevIssuer
from adapters.kafka.topics import topic_for
from adapters.mongo.cards import CARDS
from adapters.mongo.notice_projection import NOTICES, SUBSCRIPTIONS
from devstack.apache_kafka import ApacheKafkaBroker
from devstack.process import ManagedProcess
from devstack.secantus import SecantusServer
from devstack.workers import Partition, current, split
from domain.commands import CommandContext
from domain.events import AGGREGATE_POSITIONS
from domain.positions import positions_aggregate_id
from domain.principal import ROLE_OPERATOR, Principal
from projections.cards import CardProjector
from projections.notices import NoticeProjector
from settings import Settings
from tests.projections.scenario import Portal
from tests.support import (
    HERALD,
    REPO,
    Broker,
    GraphQLClient,
    RunningHerald,
    eventually,
    herald_settings,
    worker_env,
)

ACCOUNTS = 8_000
ISIN = "RU0009029540"
AS_OF = "2026-12-15"
OPERATOR = CommandContext(Principal(subject="olga", roles=frozenset({ROLE_OPERATOR})), "kill")


def quantity(n: int) -> str:
    return "0" if n % 10 == 0 else str(n % 500 + 1)  # every 10th account holds nothing


def account(n: int) -> str:
    return f"ACC-{n:06d}"


async def split_between(workers: list[ManagedProcess], group: str, partitions: int) -> None:
    """Wait until both members hold a disjoint, non-empty share covering every partition."""

    def shares() -> list[set[Partition]]:
        for worker in workers:
            assert worker.is_running, worker.log_tail()
        return [current(w, group) for w in workers]

    async def probe() -> list[set[Partition]]:
        return shares()

    await eventually(probe, lambda held: split(held, partitions), timeout=60)


def positions_partition(s: Settings) -> Partition:
    """Where the producer puts the PositionsRecorded event (keyed by aggregate id)."""
    key = positions_aggregate_id(ISIN, AS_OF).encode()
    partitions = list(range(s.kafka_partitions))
    return topic_for(s.kafka_topic_prefix, AGGREGATE_POSITIONS), DefaultPartitioner()(
        key, partitions, partitions
    )


@pytest.fixture
def own_store() -> Iterator[str]:
    """A store of its own: the fan-out and the killed worker's abandoned
    queries load it heavily, and must not slow the rest of the suite."""
    store = SecantusServer(None)
    store.start()
    yield store.uri
    store.stop()


async def test_sigkill_of_the_fanning_out_projector_loses_and_duplicates_nothing(
    apache_kafka: ApacheKafkaBroker, own_store: str, issuer: DevIssuer, tmp_path: Path
) -> None:
    started = time.monotonic()
    broker = Broker("kafka", apache_kafka.bootstrap_servers, idempotent=True)
    # Notices only: no dispatcher marks them delivered while the counts are checked.
    settings = herald_settings(
        broker, own_store, issuer, run_projectors=False, run_dispatcher=False
    )
    notices_group = f"{settings.projector_group_prefix}.{NoticeProjector.name}"
    cards_group = f"{settings.projector_group_prefix}.{CardProjector.name}"
    herald = RunningHerald(settings, issuer)
    await herald.start()  # creates the topics; relay on, projectors off
    env = worker_env(settings)
    workers = [
        ManagedProcess(f"worker-{name}", [str(HERALD), "worker"], tmp_path, env=env, cwd=REPO)
        for name in ("a", "b")
    ]
    db = herald.services.db
    try:
        for worker in workers:
            worker.start()
        await split_between(workers, notices_group, 3 * settings.kafka_partitions)
        await split_between(workers, cards_group, settings.kafka_partitions)

        async with httpx.AsyncClient(base_url=herald.base_url, timeout=30) as http:
            portal = Portal(GraphQLClient(http, issuer))
            action_id = await portal.publish(reference="RU-KILL-1", recordDate=AS_OF)
            await eventually(
                lambda: db[CARDS].find_one({"_id": action_id}),
                lambda card: card is not None and card["publishedVersion"] == 1,
            )
            # The approval's own reconcile (no positions yet) is done: from now on
            # only the positions event starts a fan-out.
            await eventually(
                lambda: db[SUBSCRIPTIONS].find_one({"actionId": action_id}),
                lambda subscription: subscription is not None,
            )

            # The worker whose notices member holds the positions partition fans out.
            target = positions_partition(settings)
            [owner] = [w for w in workers if target in current(w, notices_group)]
            [survivor] = [w for w in workers if w is not owner]

            holders = {account(n) for n in range(ACCOUNTS) if quantity(n) != "0"}
            payload = {
                "isin": ISIN,
                "asOf": AS_OF,
                "positions": [
                    {"accountId": account(n), "quantity": quantity(n), "taxRatePercent": "13"}
                    for n in range(ACCOUNTS)
                ],
            }
            await herald.services.handlers.record_positions(payload, OPERATOR)

            async def visible() -> int:
                return await db[NOTICES].count_documents({"corporateActionId": action_id})

            # A point lookup, not a count: a count over thousands of notices takes
            # SecantusDB a second or more and would slow the fan-out it watches.
            # Generous: two worker processes and the relay share the cores with
            # whatever else the machine runs; a real loss fails below, not here.
            deadline = asyncio.get_running_loop().time() + 180
            while not await db[NOTICES].find_one({"corporateActionId": action_id}, {"_id": 1}):
                assert asyncio.get_running_loop().time() < deadline, "no notice appeared"
                await asyncio.sleep(0.01)
            assert target in current(owner, notices_group), "the partition moved before the kill"
            owner.kill()
            killed_at = time.monotonic()
            # Mid-batch: some notices are stored, the positions offset is not committed.
            at_kill = await visible()
            assert 0 < at_kill < len(holders), f"{at_kill} notices when {owner.name} was killed"
            print(f"\nSIGKILL {owner.name} (held {target}) with {at_kill}/{len(holders)} notices")

            # The survivor takes the partition over and finishes the fan-out.
            done = await _eventually_slowly(visible, lambda n: n >= len(holders), timeout=180)
            print(
                f"survivor {survivor.name} completed {done} notices "
                f"{time.monotonic() - killed_at:.1f}s after the kill ({at_kill} at the kill)"
            )
            assert target in current(survivor, notices_group)
            assert survivor.is_running, survivor.log_tail()

            # Exact: every holder once, nobody else, each the first issue of a NEW notice.
            await asyncio.sleep(1.0)  # a late duplicate write would show up now
            notices = await _notices_of(herald, action_id)
            assert set(notices) == holders
            assert await visible() == len(holders)
            kinds = {(d["kind"], d["version"], tuple(d["changedFields"])) for d in notices.values()}
            assert kinds == {("NEW", 1, ())}
            sample = notices[account(1)]
            assert sample["content"]["eligibleQuantity"] == quantity(1)
            # ...and the counts kept beside them, moved in the same transactions, agree
            assert await herald.services.notices.by_action([action_id]) == {
                action_id: (len(holders), 0, 0)
            }

            # The cards read model has the card; the survivor projects new cards too.
            card = await db[CARDS].find_one({"_id": action_id})
            assert card is not None and card["publishedVersion"] == 1 and card["isPublic"]
            later = await portal.publish(reference="RU-KILL-2", recordDate="2026-12-16")
            await eventually(
                lambda: db[CARDS].find_one({"_id": later}),
                lambda card: card is not None and card["publishedVersion"] == 1,
                timeout=30,
            )
    finally:
        for worker in workers:
            worker.stop(timeout=10)
        await herald.stop()
    print(f"test took {time.monotonic() - started:.1f}s")


async def _notices_of(herald: RunningHerald, action_id: str) -> dict[str, dict[str, Any]]:
    cursor = herald.services.db[NOTICES].find({"corporateActionId": action_id})
    return {doc["accountId"]: doc async for doc in cursor}


async def _eventually_slowly(
    probe: Callable[[], Awaitable[int]], check: Callable[[int], bool], timeout: float
) -> int:
    """`eventually` for an expensive probe (a count): poll twice a second."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check(value := await probe()):
        assert asyncio.get_running_loop().time() < deadline, f"not reached in {timeout}s: {value}"
        await asyncio.sleep(0.5)
    return value
