"""Rebuild a projection without downtime.

A fresh consumer group replays the log from offset 0 into fresh collections
while readers keep using the live ones; progress shows in `projections { }`
(as "<name>:rebuild") and on the console. When the rebuild has caught up with
the end offsets it saw at start, its collection atomically replaces the live
one (renameCollection), and a last pass re-applies whatever arrived in
between — idempotently, since every write is version-guarded.

Notices are rebuilt in two phases: publications and positions first, then
acknowledgements, which only ever apply to a notice that exists.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from adapters.kafka.consumer import KafkaEventConsumer
from adapters.kafka.topics import topic_for
from adapters.mongo.cards import CARDS, MongoCardStore
from adapters.mongo.collections import drop, replace_collection
from adapters.mongo.notice_projection import NOTICES, MongoNoticeProjectionStore
from delivery.wiring import delivered_at_issue
from domain.events import AGGREGATE_CORPORATE_ACTION, AGGREGATE_NOTICE, AGGREGATE_POSITIONS
from projections.cards import CardProjector
from projections.notices import NoticeProjector
from projections.runner import ProjectionRunner, Projector
from services import Services

Progress = Callable[[str], None]


def _phases(services: Services, name: str, collection: str) -> list[Projector]:
    prefix = services.settings.kafka_topic_prefix
    actions = topic_for(prefix, AGGREGATE_CORPORATE_ACTION)
    positions = topic_for(prefix, AGGREGATE_POSITIONS)
    acks = topic_for(prefix, AGGREGATE_NOTICE)
    if name == "cards":
        cards = MongoCardStore(services.db, collection, sessions=services.transaction_sessions)
        return [CardProjector(cards, services.events, [actions])]
    if name == "notices":
        # delivered at issue as the live projector stores them (no channel on)
        store = MongoNoticeProjectionStore(
            services.db,
            notices=collection,
            delivered_at_issue=delivered_at_issue(services.settings),
        )
        return [
            NoticeProjector(store, services.positions, services.events, [actions, positions]),
            NoticeProjector(store, services.positions, services.events, [acks]),
        ]
    raise ValueError(f"unknown projection {name!r}; choose one of: cards, notices")


LIVE_COLLECTION = {"cards": CARDS, "notices": NOTICES}
PROJECTIONS = tuple(LIVE_COLLECTION)


async def _catch_up(
    services: Services, projector: Projector, group: str, label: str, progress: Progress
) -> None:
    """Consume from the group's position until the end offsets seen at start."""
    settings = services.settings
    consumer = KafkaEventConsumer(
        settings.kafka_bootstrap,
        group,
        projector.topics,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    runner = ProjectionRunner(
        projector,
        consumer,
        services.projection_state,
        dead_letters=services.dead_letters,
        name=label,
    )
    await consumer.start()
    try:
        targets: dict[str, int] | None = None
        last_print = 0.0
        while True:
            await runner.step()
            committed, ends = await consumer.progress()
            if targets is None and ends:
                targets = dict(ends)
            if targets is None:
                continue
            done = sum(min(committed.get(tp, 0), end) for tp, end in targets.items())
            total = sum(targets.values())
            if time.monotonic() - last_print > 1.0:
                last_print = time.monotonic()
                progress(f"{label}: {done}/{total} events")
            if done >= total:
                progress(f"{label}: {done}/{total} events, caught up")
                return
    finally:
        await consumer.stop()


async def rebuild(
    services: Services, name: str, *, switch: bool = True, progress: Progress = print
) -> str:
    """Rebuild `name`; returns the collection that holds the result.

    With switch=False the rebuilt collection is left beside the live one (to
    compare them); otherwise it replaces the live one atomically.
    """
    stamp = time.strftime("%Y%m%d%H%M%S")
    collection = f"{LIVE_COLLECTION[name]}__rebuild_{stamp}"
    group = f"{services.settings.projector_group_prefix}.{name}.rebuild-{stamp}"
    await drop(services.db, collection)
    started = time.monotonic()
    phases = _phases(services, name, collection)
    for number, phase in enumerate(phases, 1):
        label = f"{name}:rebuild" + (f" phase {number}/{len(phases)}" if len(phases) > 1 else "")
        await _catch_up(services, phase, f"{group}.{number}", label, progress)
    if not switch:
        progress(f"{name}: rebuilt into {collection} in {time.monotonic() - started:.1f}s")
        return collection
    live = LIVE_COLLECTION[name]
    await replace_collection(services.db, collection, live)
    # Re-apply what arrived between the catch-up and the switch, now onto `live`.
    for number, phase in enumerate(_phases(services, name, live), 1):
        await _catch_up(services, phase, f"{group}.{number}", f"{name}:rebuild", progress)
    progress(f"{name}: rebuilt and switched over in {time.monotonic() - started:.1f}s")
    return live


def run(name: str, *, switch: bool = True) -> None:
    """`herald rebuild NAME` against the store and broker the environment names."""
    from settings import Settings

    async def main() -> None:
        services = Services(
            Settings.from_env().with_overrides(run_relay=False, run_projectors=False)
        )
        await services.start()
        try:
            await rebuild(services, name, switch=switch)
        finally:
            await services.stop()

    asyncio.run(main())
