"""The card projector: folds corporate-action events into the `cards` read model.

A consumer batch is applied as one: the batch's cards are read in one query;
per card, the events it already has are dropped (redelivery, duplicates), a
gap is filled from the event record (the durable truth), and the rest is
folded in version order with the same `apply` the write side uses; then every
changed card is stored at once, each guarded by the revision it was read at
(`CardStore.save_many`: two commits at most, whatever the batch's size). A
card whose revision moved meanwhile (another member wrote it during a
rebalance) is read and folded again.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from domain import corporate_action as ca
from domain.consistency import CARDS_PROJECTION
from domain.corporate_action import CorporateAction
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
        streams: dict[str, list[EventEnvelope]] = {}
        for event in events:
            if event.aggregate_type == AGGREGATE_CORPORATE_ACTION:
                streams.setdefault(event.aggregate_id, []).append(event)
        for stream in streams.values():
            stream.sort(key=lambda e: e.version)
        while streams:
            stored = await self._cards.get_many(list(streams))
            changes: list[tuple[CorporateAction, int]] = []
            for aggregate_id, stream in streams.items():
                state = stored.get(aggregate_id)
                folded = await self._fold(aggregate_id, state, stream)
                if folded is not None:
                    changes.append((folded, 0 if state is None else state.revision))
            if not changes:
                return
            # Cards another member wrote meanwhile (rebalance): read and fold again.
            stale = await self._cards.save_many(changes)
            streams = {i: stream for i, stream in streams.items() if i in stale}

    async def _fold(
        self, aggregate_id: str, state: CorporateAction | None, stream: list[EventEnvelope]
    ) -> CorporateAction | None:
        """The card `state` with the events of `stream` (version order) it has
        not yet applied; None when it has them all."""
        revision = 0 if state is None else state.revision
        fresh = [e for e in stream if e.version > revision]
        skipped = len(stream) - len(fresh)
        if skipped:
            metrics.PROJECTED_EVENTS.labels(NAME, "duplicate").inc(skipped)
        if not fresh:
            return None
        if fresh[0].version != revision + 1 or _has_gap(fresh):
            # Something between the card and this batch is missing (e.g. a
            # lost or out-of-order delivery): the event record has it.
            fresh = await self._events.load(aggregate_id, after_version=revision)
            fresh = [e for e in fresh if e.version <= stream[-1].version]
        for event in fresh:
            state = ca.apply(state, event)
        if state is None:  # delivered, yet not in the record: parked, as any poison record
            raise LookupError(f"{aggregate_id} v{stream[-1].version} is not in the event record")
        return state


def _has_gap(stream: list[EventEnvelope]) -> bool:
    return any(b.version != a.version + 1 for a, b in pairwise(stream))
