"""Command handlers: validate, decide on the aggregate's current state, store
the resulting events durably (the outbox), and tell the relay.

A handler returns only after its events are in the event record, so an
accepted command survives a Kafka outage (invariant 1). Concurrent commands
on one aggregate race for the same stream version; the store lets one win and
the loser hears VersionConflict (invariant 2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from commands.ids import new_action_id, new_event_id
from domain import corporate_action as ca
from domain import events as ev
from domain.consistency import ConsistencyToken
from domain.errors import Forbidden, VersionConflict
from domain.ports import ConcurrencyError, EventStore, UniqueKeyTaken
from domain.positions import parse_positions, positions_to_payload
from domain.principal import Principal
from domain.validation import InvalidInput, Problem, parse_amendment, parse_terms, terms_to_payload

REFERENCE_NAMESPACE = "reference"


@dataclass(frozen=True)
class CommandContext:
    principal: Principal
    correlation_id: str

    @property
    def actor(self) -> str:
        if self.principal.subject is None:
            raise Forbidden("commands need an authenticated caller")
        return self.principal.subject


@dataclass(frozen=True)
class ActionResult:
    action: ca.CorporateAction
    # the version this command created (announce/amend/cancel) or published (approve)
    version: int
    token: ConsistencyToken


@dataclass(frozen=True)
class PositionsResult:
    accepted: int
    token: ConsistencyToken


def positions_aggregate_id(isin: str, as_of: str) -> str:
    return f"{isin}:{as_of}"


class CommandHandlers:
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

    # --- corporate actions ----------------------------------------------------

    async def announce(self, payload: Mapping[str, Any], ctx: CommandContext) -> ActionResult:
        actor = ctx.actor
        terms = parse_terms(payload)
        action_id = new_action_id()
        decided = ca.announce(terms_to_payload(terms))
        return await self._record_action(
            None, action_id, decided, ctx, actor, reserve_reference=terms.reference
        )

    async def amend(
        self, action_id: str, expected_version: int, changes: Mapping[str, Any], ctx: CommandContext
    ) -> ActionResult:
        actor = ctx.actor
        state = await self._load_action(action_id)
        if state is not None and expected_version == state.latest_version:
            current = parse_terms(state.latest_terms)
            new_terms = parse_amendment(current, changes)
            terms_payload = terms_to_payload(new_terms)
            new_reference = (
                new_terms.reference if new_terms.reference != current.reference else None
            )
        else:
            terms_payload, new_reference = {}, None  # the decision below refuses
        decided = ca.amend(state, action_id, expected_version, terms_payload)
        return await self._record_action(
            state, action_id, decided, ctx, actor, reserve_reference=new_reference
        )

    async def cancel(
        self, action_id: str, expected_version: int, reason: str, ctx: CommandContext
    ) -> ActionResult:
        actor = ctx.actor
        reason = reason.strip()
        if not reason or len(reason) > 500:
            raise InvalidInput((Problem(("reason",), "must be 1–500 characters"),))
        state = await self._load_action(action_id)
        decided = ca.cancel(state, action_id, expected_version, reason)
        return await self._record_action(state, action_id, decided, ctx, actor)

    async def approve(self, action_id: str, version: int, ctx: CommandContext) -> ActionResult:
        actor = ctx.actor
        state = await self._load_action(action_id)
        decided = ca.approve(state, action_id, version, actor)
        return await self._record_action(state, action_id, decided, ctx, actor)

    async def _load_action(self, action_id: str) -> ca.CorporateAction | None:
        return ca.replay(await self._store.load(action_id))

    async def _record_action(
        self,
        state: ca.CorporateAction | None,
        action_id: str,
        decided: ev.NewEvent,
        ctx: CommandContext,
        actor: str,
        *,
        reserve_reference: str | None = None,
    ) -> ActionResult:
        envelope = self._envelope(
            ev.AGGREGATE_CORPORATE_ACTION,
            action_id,
            1 if state is None else state.revision + 1,
            decided,
            ctx,
            actor,
        )
        reservations = (
            [] if reserve_reference is None else [(REFERENCE_NAMESPACE, reserve_reference)]
        )
        try:
            [stored] = await self._store.append([envelope], reservations)
        except ConcurrencyError as exc:
            raise VersionConflict(
                f"corporate action {action_id} was changed concurrently; reload and retry"
            ) from exc
        except UniqueKeyTaken as exc:
            raise InvalidInput(
                (Problem(("reference",), f"reference {exc.key!r} is already used"),)
            ) from exc
        self._on_appended()
        new_state = ca.apply(state, stored)
        return ActionResult(
            action=new_state,
            version=int(decided.payload["caVersion"]),
            token=_token(stored),
        )

    # --- positions ------------------------------------------------------------

    async def record_positions(
        self, payload: Mapping[str, Any], ctx: CommandContext, *, attempts: int = 3
    ) -> PositionsResult:
        """A later snapshot for the same isin and date replaces the earlier one."""
        actor = ctx.actor
        snapshot = parse_positions(payload)
        aggregate_id = positions_aggregate_id(snapshot.isin, snapshot.as_of.isoformat())
        decided = ev.NewEvent(ev.POSITIONS_RECORDED, positions_to_payload(snapshot))
        for attempt in range(attempts):
            existing = await self._store.load(aggregate_id)
            version = (existing[-1].version if existing else 0) + 1
            envelope = self._envelope(
                ev.AGGREGATE_POSITIONS, aggregate_id, version, decided, ctx, actor
            )
            try:
                [stored] = await self._store.append([envelope])
            except ConcurrencyError:
                if attempt == attempts - 1:
                    raise VersionConflict(
                        f"positions {aggregate_id} are being recorded concurrently; retry"
                    ) from None
                continue
            self._on_appended()
            return PositionsResult(len(snapshot.positions), _token(stored))
        raise AssertionError("unreachable")

    def _envelope(
        self,
        aggregate_type: str,
        aggregate_id: str,
        version: int,
        decided: ev.NewEvent,
        ctx: CommandContext,
        actor: str,
    ) -> ev.EventEnvelope:
        return ev.EventEnvelope(
            event_id=new_event_id(),
            event_type=decided.event_type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            version=version,
            occurred_at=self._clock(),
            actor=actor,
            correlation_id=ctx.correlation_id,
            payload=decided.payload,
        )


def _token(event: ev.EventEnvelope) -> ConsistencyToken:
    return ConsistencyToken(event.aggregate_type, event.aggregate_id, event.version, event.sequence)
