"""Setting an account's notification preferences: validate, authorize, record.

The preferences are an event stream per account (`NotificationPreferencesSet`,
each event the whole new state), stored in the outbox like every command's
events, so the read model and the dispatcher rebuild them from the log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from commands.ids import command_event_id, new_event_id
from domain import events as ev
from domain.commands import CommandContext, PreferencesResult
from domain.consistency import ConsistencyToken
from domain.errors import VersionConflict
from domain.ports import ConcurrencyError, EventStore
from domain.preferences import (
    Preferences,
    as_requested_by,
    authorize,
    parse_preferences,
    preferences_aggregate_id,
)
from observability.trace_context import current_trace_context
from observability.tracing import traced_command


class PreferencesHandlers:
    def __init__(
        self,
        store: EventStore,
        *,
        on_appended: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._on_appended = on_appended
        self._clock = clock

    @traced_command("set_notification_preferences")
    async def set_preferences(
        self, payload: Mapping[str, Any], ctx: CommandContext, *, attempts: int = 3
    ) -> PreferencesResult:
        """Replace the account's preferences. Raises InvalidInput (nothing
        stored) or Forbidden (not the caller's account; a BIC set by a
        non-operator; a depositor dropping operator-set SWIFT routing — see
        `domain.preferences.as_requested_by`)."""
        actor = ctx.actor
        command = ctx.command
        # One key, one execution (issue 12): the event id derives from the
        # key's command, so a resumed command finds what it stored.
        event_id = (
            new_event_id() if command is None else command_event_id(command.origin.command_id)
        )
        if command is not None and command.resumed:
            earlier = await self._store.get(event_id)
            if earlier is not None:
                command.outcome.event_stored(earlier=True)
                return _result(earlier)
        account_id = str(payload.get("accountId") or "").strip()
        # Whose account, and who may set a BIC, before reading anything of it.
        authorize(ctx.principal, account_id, sets_bic=not _blank(payload.get("bic")))
        for _ in range(attempts):
            stream = await self._store.load(preferences_aggregate_id(account_id))
            current = Preferences.from_payload(stream[-1].payload) if stream else None
            preferences = parse_preferences(as_requested_by(ctx.principal, payload, current))
            envelope = ev.EventEnvelope(
                event_id=event_id,
                event_name=ev.NOTIFICATION_PREFERENCES_SET,
                aggregate_type=ev.AGGREGATE_PREFERENCES,
                aggregate_id=preferences_aggregate_id(preferences.account_id),
                version=(stream[-1].version if stream else 0) + 1,
                occurred_at=self._clock(),
                actor=actor,
                correlation_id=ctx.correlation_id,
                payload=preferences.to_payload(),
                trace_context=current_trace_context(),
            )
            try:
                # (the head's sequence: this stream's sequences rise with its versions)
                head = stream[-1].sequence if stream else 0
                [stored] = await self._store.append([envelope], follows=head)
            except ConcurrencyError:
                continue  # another change of the same account won: stack on top of it
            self._on_appended()
            if command is not None:
                # the answer is the stored event's: a repeat rebuilds it
                command.outcome.event_stored()
            return _result(stored)
        raise VersionConflict(f"preferences of {payload.get('accountId')} are changing; retry")


def _result(stored: ev.EventEnvelope) -> PreferencesResult:
    # The stores keep milliseconds: answer with the time the read model will show.
    at = stored.occurred_at.replace(microsecond=stored.occurred_at.microsecond // 1000 * 1000)
    token = ConsistencyToken(
        stored.aggregate_type, stored.aggregate_id, stored.version, stored.sequence
    )
    return PreferencesResult(Preferences.from_payload(stored.payload), at, token)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
