"""The card projector: folds corporate-action events into the `cards` read model.

Per aggregate in a batch: load the card, drop events it already has
(redelivery, duplicates), fill any gap from the event record (the durable
truth), fold with the same `apply` the write side uses, and store guarded by
the previous revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from domain import corporate_action as ca
from domain.consistency import CARDS_PROJECTION
from domain.events import AGGREGATE_CORPORATE_ACTION, EventEnvelope
from domain.ports import CardStore, EventStore
from observability import metrics

NAME = CARDS_PROJECTION


class CardProjector:
    name = NAME

    def __init__(self, cards: CardStore, events: EventStore, topics: Sequence[str]) -> None:
        self._cards = cards
        self._events = events
        self.topics = topics

    async def apply(self, events: Sequence[EventEnvelope]) -> None:
        by_aggregate: dict[str, list[EventEnvelope]] = {}
        for event in events:
            if event.aggregate_type == AGGREGATE_CORPORATE_ACTION:
                by_aggregate.setdefault(event.aggregate_id, []).append(event)
        for aggregate_id, stream in by_aggregate.items():
            await self._apply_stream(aggregate_id, sorted(stream, key=lambda e: e.version))

    async def _apply_stream(self, aggregate_id: str, stream: list[EventEnvelope]) -> None:
        while True:
            state = await self._cards.get(aggregate_id)
            revision = 0 if state is None else state.revision
            fresh = [e for e in stream if e.version > revision]
            skipped = len(stream) - len(fresh)
            if skipped:
                metrics.PROJECTED_EVENTS.labels(NAME, "duplicate").inc(skipped)
            if not fresh:
                return
            if fresh[0].version != revision + 1 or _has_gap(fresh):
                # Something between the card and this batch is missing (e.g. a
                # lost or out-of-order delivery): the event record has it.
                fresh = await self._events.load(aggregate_id, after_version=revision)
                fresh = [e for e in fresh if e.version <= stream[-1].version]
            new_state = state
            for event in fresh:
                new_state = ca.apply(new_state, event)
            assert new_state is not None
            if await self._cards.save(new_state, revision):
                return
            # Another member wrote this card meanwhile (rebalance): re-read and retry.


def _has_gap(stream: list[EventEnvelope]) -> bool:
    return any(b.version != a.version + 1 for a, b in pairwise(stream))
