"""The cards read model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from domain.corporate_action import CorporateAction


@dataclass(frozen=True)
class CardQuery:
    """Filter of the card list, on the view a reader sees (the published
    version, else the pending one). `public_only` restricts to published cards;
    dates are ISO `YYYY-MM-DD`, inclusive."""

    public_only: bool = True
    isin: str | None = None
    event_types: Sequence[str] = ()
    statuses: Sequence[str] = ()
    record_date_from: str | None = None
    record_date_to: str | None = None
    ids: Sequence[str] = field(default_factory=tuple)


class CardStore(Protocol):
    """One card per corporate action (its folded state), written by the card
    projector under a revision guard and read by the API."""

    async def get(self, action_id: str) -> CorporateAction | None: ...

    async def get_many(self, ids: Sequence[str]) -> dict[str, CorporateAction]:
        """The cards of those of `ids` that exist, by id."""
        ...

    async def save(self, state: CorporateAction, previous_revision: int) -> bool:
        """Store `state` if the stored card is still at `previous_revision` (0: none
        stored yet); False when it is not (a stale or repeated apply)."""
        ...

    async def save_many(self, changes: Sequence[tuple[CorporateAction, int]]) -> set[str]:
        """Store each `(state, previous_revision)` as `save` does (one change per
        card), in as few store commits as the store allows: the new cards in one
        write, the updates in another. Returns the ids of the cards not stored
        (their stored revision is no longer `previous_revision`); every other
        change is stored. Store errors as `save`."""
        ...

    async def page(
        self, query: CardQuery, first: int, after: str | None
    ) -> tuple[list[CorporateAction], bool]:
        """Up to `first` cards matching `query`, newest first (ids are
        time-ordered), after the card `after`; and whether more follow."""
        ...

    async def count(self, query: CardQuery) -> int: ...
