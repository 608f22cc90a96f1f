"""The card projector applies a consumer batch as one: one read of the batch's
cards, its new cards in one insert and its updates in one transaction, whatever
the batch's size (the runner records the batch's versions in as few); and the
cards end as applying one event at a time leaves them, whatever the order, the
duplicates and the split of the deliveries."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory.cards import MemoryCardStore
from adapters.memory.event_store import MemoryEventStore
from adapters.memory.positions import MemoryPositionSnapshotStore
from adapters.mongo.cards import MongoCardPublicationFeed, MongoCardStore
from adapters.mongo.projection_state import MongoProjectionState
from adapters.mongo.transactions import PROCESS_SESSIONS, TransactionSessions
from commands.handlers import CommandHandlers
from domain.commands import ActionResult, CommandContext
from domain.corporate_action import CorporateAction
from domain.events import EventEnvelope
from domain.ports import CardStore, FeedChange, FeedSignal
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, Principal
from projections.cards import CardProjector
from projections.runner import highest_versions
from tests.store_commands import recording
from tests.support import DIVIDEND

OLGA = CommandContext(Principal("olga", frozenset({ROLE_OPERATOR})), "c")
IVAN = CommandContext(Principal("ivan", frozenset({ROLE_APPROVER})), "c")
# Each action's history is a prefix of this one: NEWM, amended before
# approval, approved, amended again (REPL), approved, cancelled (CANC), approved.
FULL_HISTORY = 7
DEPTHS = (1, 2, 3, 5, 7, 4)
HANG_SECONDS = 30.0  # a guard against a hang, not a timed assertion


def _rate(amount: str) -> dict[str, Any]:
    return {"grossRate": {"amount": amount, "currency": "RUB"}}


async def _history(handlers: CommandHandlers, depth: int) -> str:
    """An action with the first `depth` commands of the full history; its id."""
    action_id = (await handlers.announce({**DIVIDEND, "reference": _reference()}, OLGA)).action.id
    steps: list[Callable[[], Awaitable[ActionResult]]] = [
        lambda: handlers.amend(action_id, 1, _rate("34"), OLGA),
        lambda: handlers.approve(action_id, 2, IVAN),
        lambda: handlers.amend(action_id, 2, _rate("35"), OLGA),
        lambda: handlers.approve(action_id, 3, IVAN),
        lambda: handlers.cancel(action_id, 3, "withdrawn by the issuer", OLGA),
        lambda: handlers.approve(action_id, 4, IVAN),
    ]
    for step in steps[: depth - 1]:
        await step()
    return action_id


def _reference() -> str:
    return f"R-{uuid.uuid4().hex[:10]}"


async def _recorded(depths: Sequence[int]) -> tuple[MemoryEventStore, list[EventEnvelope]]:
    """Actions with histories of `depths`; the event record and its events in
    the order they were written."""
    events = MemoryEventStore()
    handlers = CommandHandlers(events, MemoryPositionSnapshotStore())
    written: list[EventEnvelope] = []
    for depth in depths:
        written += await events.load(await _history(handlers, depth))
    return events, written


async def _one_at_a_time(
    events: MemoryEventStore, written: Sequence[EventEnvelope]
) -> dict[tuple[str, int], CorporateAction]:
    """Each card as it stands after each of its versions, applying one event at a time."""
    cards = MemoryCardStore()
    projector = CardProjector(cards, events, ())
    after: dict[tuple[str, int], CorporateAction] = {}
    for event in written:
        await projector.apply([event])
        card = await cards.get(event.aggregate_id)
        assert card is not None and card.revision == event.version
        after[(event.aggregate_id, event.version)] = card
    return after


deliveries = st.tuples(
    st.randoms(use_true_random=False),
    st.lists(st.integers(0, 10_000), max_size=6),  # redelivered events
    st.lists(st.booleans(), min_size=40, max_size=40),  # a batch ends after each True
)


async def _check_batches_fold_as_one_at_a_time(
    cards: CardStore, delivery: tuple[Any, list[int], list[bool]]
) -> None:
    shuffle, repeats, cuts = delivery
    events, written = await _recorded(DEPTHS)
    expected = await _one_at_a_time(events, written)
    order = list(written) + [written[r % len(written)] for r in repeats]
    shuffle.shuffle(order)
    batches: list[list[EventEnvelope]] = [[]]
    for n, event in enumerate(order):
        batches[-1].append(event)
        if cuts[n % len(cuts)]:
            batches.append([])
    projector = CardProjector(cards, events, ())
    highest: dict[str, int] = {}
    for batch in batches:
        await projector.apply(batch)
        for event in batch:
            highest[event.aggregate_id] = max(highest.get(event.aggregate_id, 0), event.version)
        # what a consistency token waits on is visible once its batch is applied
        stored = await cards.get_many(list(highest))
        assert {i: stored[i] for i in highest} == {
            i: expected[(i, version)] for i, version in highest.items()
        }
    assert {card.revision for card in stored.values()} == set(DEPTHS)


@settings(max_examples=150, deadline=None)
@given(delivery=deliveries)
async def test_any_split_order_and_redelivery_folds_as_one_event_at_a_time(
    delivery: tuple[Any, list[int], list[bool]],
) -> None:
    await _check_batches_fold_as_one_at_a_time(MemoryCardStore(), delivery)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(delivery=deliveries)
async def test_any_split_folds_as_one_event_at_a_time_on_mongo(
    db: Any, delivery: tuple[Any, list[int], list[bool]]
) -> None:
    cards = MongoCardStore(
        db, f"cards_{uuid.uuid4().hex[:8]}", sessions=TransactionSessions(db, holder="test")
    )
    await _check_batches_fold_as_one_at_a_time(cards, delivery)


async def _commands_per_batch(db: Any, size: int) -> list[Counter[str]]:
    """The store commands of the card projector's batches of `size` actions, and
    of recording their applied versions:
    their announcements, their approvals, and announcements with an amendment
    beside approvals of stored cards."""
    events = MemoryEventStore()
    handlers = CommandHandlers(events, MemoryPositionSnapshotStore())
    name = f"cards_{uuid.uuid4().hex[:8]}"
    cards = MongoCardStore(db, name, sessions=TransactionSessions(db, holder="test"))
    projector = CardProjector(cards, events, ())
    state = MongoProjectionState(db, sessions=TransactionSessions(db, holder="test"))
    first = [await _history(handlers, 1) for _ in range(size)]
    announced = [(await events.load(i))[0] for i in first]
    for i in first:
        await handlers.approve(i, 1, IVAN)
    approvals = [(await events.load(i, after_version=1))[0] for i in first]
    amended = [await _history(handlers, 2) for _ in range(size)]
    for i in first:
        await handlers.cancel(i, 1, "withdrawn", OLGA)
    cancellations = [(await events.load(i, after_version=2))[0] for i in first]
    mixed = [e for i in amended for e in await events.load(i)] + cancellations
    counted = []
    for batch in (announced, approvals, mixed):
        with recording() as sent:
            await projector.apply(batch)
            await state.record_applied(name, highest_versions(batch))  # as the runner does
        # (a pooled session's first transaction records it once: not per batch)
        counted.append(
            Counter(str(s).replace(name, "cards") for s in sent if s.collection != PROCESS_SESSIONS)
        )
    stored = await cards.get_many(first + amended)
    assert {c.revision for i, c in stored.items() if i in first} == {3}
    assert {c.revision for i, c in stored.items() if i in amended} == {2}
    return counted


async def test_the_store_commands_of_a_batch_do_not_grow_with_its_size(db: Any) -> None:
    small, large = await _commands_per_batch(db, 2), await _commands_per_batch(db, 12)
    assert small == large
    new, updates, mixed = large
    assert new == Counter({"find cards": 1, "insert cards": 1, "insert projection_tracking": 1})
    assert updates["find cards"] == 1 and updates["update cards"] == 1
    assert updates["update projection_tracking"] == 1
    assert mixed["insert cards"] == 1 and mixed["update cards"] == 1
    assert updates["commitTransaction"] == mixed["commitTransaction"] == 2


async def test_a_batch_publishes_through_the_publication_feed_as_single_writes_do(db: Any) -> None:
    """The edge cache's generation and the card fan-out follow `publication_match`:
    a batch's insert and its transaction's updates are seen there card by card."""
    events = MemoryEventStore()
    handlers = CommandHandlers(events, MemoryPositionSnapshotStore())
    name = f"cards_{uuid.uuid4().hex[:8]}"
    cards = MongoCardStore(db, name, sessions=TransactionSessions(db, holder="test"))
    projector = CardProjector(cards, events, ())
    pending = [await _history(handlers, 1) for _ in range(2)]
    published = await _history(handlers, 3)  # NEWM, amended, approved: stored published
    changes = MongoCardPublicationFeed(db, name).follow(asyncio.Event())
    try:
        assert (await _next(changes)).signal is FeedSignal.RESET
        first = [e for i in [*pending, published] for e in await events.load(i)]
        await projector.apply(first)
        change = await _next(changes)
        assert change.item is not None and change.item.id == published
        for action_id in pending:
            await handlers.approve(action_id, 1, IVAN)
        await projector.apply([(await events.load(i, after_version=1))[0] for i in pending])
        seen = [await _next(changes), await _next(changes)]
        assert {c.item.id for c in seen if c.item is not None} == set(pending)
        assert all(c.item is not None and c.item.published_version == 1 for c in seen)
    finally:
        await changes.aclose()


async def _next(
    changes: AsyncGenerator[FeedChange[CorporateAction], None],
) -> FeedChange[CorporateAction]:
    async with asyncio.timeout(HANG_SECONDS):
        return await anext(changes)
