"""MemoryPreferenceStore: the PreferenceStore port in memory (tests, and the
reference the contract suite holds the MongoDB adapter to)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from domain.ports import StoredPreferences
from domain.preferences import Preferences

__all__ = ["MemoryPreferenceStore"]


class MemoryPreferenceStore:
    def __init__(self) -> None:
        # per account: (version, sequence, preferences, updated_at), oldest first
        self._history: dict[str, list[tuple[int, int, Preferences, datetime]]] = {}

    async def save(
        self, preferences: Preferences, version: int, sequence: int, updated_at: datetime
    ) -> bool:
        history = self._history.setdefault(preferences.account_id, [])
        if history and history[-1][0] >= version:
            return False
        history.append((version, sequence, preferences, updated_at))
        return True

    async def get(self, account_id: str) -> StoredPreferences | None:
        history = self._history.get(account_id)
        if not history:
            return None
        version, _, preferences, updated_at = history[-1]
        return StoredPreferences(preferences, version, updated_at)

    async def current(self, account_ids: Collection[str]) -> dict[str, Preferences]:
        return {a: self._history[a][-1][2] for a in account_ids if self._history.get(a)}

    async def in_force(
        self, wanted: Collection[tuple[str, int]]
    ) -> dict[tuple[str, int], Preferences]:
        found: dict[tuple[str, int], Preferences] = {}
        for account, sequence in wanted:
            states = [
                preferences
                for _, set_at, preferences, _ in self._history.get(account, [])
                if sequence <= 0 or set_at <= sequence
            ]
            if states:
                found[account, sequence] = states[-1]
        return found
