"""The preferences projector: `NotificationPreferencesSet` events into the
`notification_preferences` read model (each event carries the whole state, so
the latest version per account wins; a replay or redelivery changes nothing)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.mongo.preferences import MongoPreferenceStore
from domain import events as ev
from domain.consistency import PREFERENCES_PROJECTION
from domain.preferences import Preferences

NAME = PREFERENCES_PROJECTION


class PreferencesProjector:
    name = NAME

    def __init__(self, preferences: MongoPreferenceStore, topics: Sequence[str]) -> None:
        self._preferences = preferences
        self.topics = topics

    async def apply(self, events: Sequence[ev.EventEnvelope]) -> None:
        latest: dict[str, ev.EventEnvelope] = {}
        for event in events:
            if event.event_type != ev.NOTIFICATION_PREFERENCES_SET:
                continue
            held = latest.get(event.aggregate_id)
            if held is None or held.version < event.version:
                latest[event.aggregate_id] = event
        for event in latest.values():
            await self._preferences.save(
                Preferences.from_payload(event.payload), event.version, event.occurred_at
            )
