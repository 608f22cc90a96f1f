"""The preferences projector: `NotificationPreferencesSet` events into the
`notification_preferences` read model (each event carries the whole state, so
the latest version per account wins; a replay or redelivery changes nothing)."""

from __future__ import annotations

from collections.abc import Sequence

from domain import events as ev
from domain.consistency import PREFERENCES_PROJECTION
from domain.ports import PreferenceStore
from domain.preferences import Preferences

NAME = PREFERENCES_PROJECTION


class PreferencesProjector:
    name = NAME

    def __init__(self, preferences: PreferenceStore, topics: Sequence[str]) -> None:
        self._preferences = preferences
        self.topics = topics

    async def apply(self, events: Sequence[ev.EventEnvelope]) -> None:
        chosen = [e for e in events if e.event_name == ev.NOTIFICATION_PREFERENCES_SET]
        for event in sorted(chosen, key=lambda e: (e.aggregate_id, e.version)):
            await self._preferences.save(
                Preferences.from_payload(event.payload),
                event.version,
                event.sequence,
                event.occurred_at,
            )
