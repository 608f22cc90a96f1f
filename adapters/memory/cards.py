"""MemoryCardStore: the CardStore port in memory (the reference the Mongo card
store's contract suite is checked against)."""

from __future__ import annotations

from collections.abc import Sequence

from domain.corporate_action import CorporateAction
from domain.ports import CardQuery

__all__ = ["MemoryCardStore", "matches"]


def matches(state: CorporateAction, query: CardQuery) -> bool:
    """Does the card match `query`, read on its view (published, else pending)?"""
    published = state.published
    if query.public_only and published is None:
        return False
    terms = (published or state.versions[-1]).terms
    record_date = terms.record_date.isoformat()
    return (
        (not query.isin or terms.isin == query.isin)
        and (not query.event_types or terms.event_type.value in query.event_types)
        and (not query.statuses or state.status.value in query.statuses)
        and (not query.record_date_from or record_date >= query.record_date_from)
        and (not query.record_date_to or record_date <= query.record_date_to)
        and (not query.ids or state.id in query.ids)
    )


class MemoryCardStore:
    def __init__(self) -> None:
        self._cards: dict[str, CorporateAction] = {}

    async def get(self, action_id: str) -> CorporateAction | None:
        return self._cards.get(action_id)

    async def get_many(self, ids: Sequence[str]) -> dict[str, CorporateAction]:
        return {i: self._cards[i] for i in ids if i in self._cards}

    async def save(self, state: CorporateAction, previous_revision: int) -> bool:
        stored = self._cards.get(state.id)
        if (0 if stored is None else stored.revision) != previous_revision:
            return False
        self._cards[state.id] = state
        return True

    async def save_many(self, changes: Sequence[tuple[CorporateAction, int]]) -> set[str]:
        return {state.id for state, previous in changes if not await self.save(state, previous)}

    async def page(
        self, query: CardQuery, first: int, after: str | None
    ) -> tuple[list[CorporateAction], bool]:
        found = sorted(
            (s for s in self._cards.values() if matches(s, query)),
            key=lambda s: s.id,
            reverse=True,
        )
        if after is not None:
            found = [s for s in found if s.id < after]
        return found[:first], len(found) > first

    async def count(self, query: CardQuery) -> int:
        return sum(matches(s, query) for s in self._cards.values())
