"""MemoryDeadLetterStore: the DeadLetterStore port in memory, with the Mongo
adapter's semantics (parking a letter again counts one more attempt and keeps
when it was first parked; a replay is marked only while no re-park moved the
attempts on)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from domain.dead_letters import DeadLetter, DeadLetterStatus

__all__ = ["MemoryDeadLetterStore"]


class MemoryDeadLetterStore:
    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}

    async def park(self, letter: DeadLetter) -> None:
        held = self._letters.get(letter.id)
        self._letters[letter.id] = replace(
            letter,
            parked_at=letter.parked_at if held is None else held.parked_at,
            status=DeadLetterStatus.PARKED,
            attempts=1 if held is None else held.attempts + 1,
            replayed_at=None,
        )

    async def find(
        self,
        source_prefix: str | None = None,
        ids: Sequence[str] = (),
        status: DeadLetterStatus | None = DeadLetterStatus.PARKED,
    ) -> list[DeadLetter]:
        found = [
            letter
            for letter in self._letters.values()
            if (not source_prefix or letter.source.startswith(source_prefix))
            and (not ids or letter.id in ids)
            and (status is None or letter.status is status)
        ]
        return sorted(found, key=lambda letter: (letter.parked_at, letter.id))

    async def replayed(self, letter_id: str, at: datetime, *, attempts: int) -> None:
        held = self._letters.get(letter_id)
        if held is not None and held.attempts == attempts:
            self._letters[letter_id] = replace(
                held, status=DeadLetterStatus.REPLAYED, replayed_at=at
            )

    async def failed_again(self, letter_id: str, reason: str, at: datetime) -> None:
        held = self._letters.get(letter_id)
        if held is not None:
            self._letters[letter_id] = replace(held, reason=reason, attempts=held.attempts + 1)
