"""Command handlers: validate, decide on the aggregate's current state, store
the resulting events durably (the outbox), and tell the relay.

A handler returns only after its events are in the event record, so an
accepted command survives a Kafka outage (invariant 1). Concurrent commands
on one aggregate race for the same stream version; the store lets one win and
the loser hears VersionConflict (invariant 2).

A command run for a request under an Idempotency-Key (invariant 3; see
web/idempotency/middleware.py) stores its event under an id derived from the
key's command id, with the key and fingerprint (`CommandOrigin`). When the
request is resumed (its key's earlier execution was abandoned or failed),
the handler first looks that event up and, found, answers from it what the
first execution answered instead of deciding again: a command runs once
across crashes, and its retry never hears "reference … is already used" for
the action it created itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from commands.ids import command_event_id, command_snapshot_id, new_action_id, new_event_id
from domain import corporate_action as ca
from domain import events as ev
from domain.commands import (
    AckResult,
    ActionResult,
    CommandContext,
    NoticeLookup,
    PositionsResult,
)
from domain.consistency import ConsistencyToken
from domain.errors import DomainError, NotFound, VersionConflict
from domain.ports import (
    ConcurrencyError,
    EventStore,
    PositionSnapshotStore,
    StoredNotice,
    UniqueKeyTaken,
)
from domain.positions import parse_positions, positions_aggregate_id
from domain.validation import InvalidInput, Problem, parse_amendment, parse_terms, terms_to_payload
from observability.trace_context import current_trace_context
from observability.tracing import traced_command

REFERENCE_NAMESPACE = "reference"

R = TypeVar("R")


class CommandHandlers:
    def __init__(
        self,
        store: EventStore,
        positions: PositionSnapshotStore,
        *,
        on_appended: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._positions = positions
        self._on_appended = on_appended
        self._clock = clock

    # --- corporate actions ----------------------------------------------------

    @traced_command("announce")
    async def announce(self, payload: Mapping[str, Any], ctx: CommandContext) -> ActionResult:
        return await self._once(ctx, self._action_answer, lambda: self._announce(payload, ctx))

    async def _announce(self, payload: Mapping[str, Any], ctx: CommandContext) -> ActionResult:
        actor = ctx.actor
        terms = parse_terms(payload)
        action_id = new_action_id()
        decided = ca.announce(terms_to_payload(terms))
        return await self._record_action(
            None, 0, action_id, decided, ctx, actor, reserve_reference=terms.reference
        )

    @traced_command("amend", aggregate_arg="action_id")
    async def amend(
        self, action_id: str, expected_version: int, changes: Mapping[str, Any], ctx: CommandContext
    ) -> ActionResult:
        return await self._once(
            ctx, self._action_answer, lambda: self._amend(action_id, expected_version, changes, ctx)
        )

    async def _amend(
        self, action_id: str, expected_version: int, changes: Mapping[str, Any], ctx: CommandContext
    ) -> ActionResult:
        actor = ctx.actor
        state, head = await self._load_action(action_id)
        if state is not None and expected_version == state.latest_version:
            current = state.latest_terms  # as recorded, not re-validated
            new_terms = parse_amendment(current, changes)
            terms_payload = terms_to_payload(new_terms)
            new_reference = (
                new_terms.reference if new_terms.reference != current.reference else None
            )
        else:
            terms_payload, new_reference = {}, None  # the decision below refuses
        decided = ca.amend(state, action_id, expected_version, terms_payload)
        return await self._record_action(
            state, head, action_id, decided, ctx, actor, reserve_reference=new_reference
        )

    @traced_command("cancel", aggregate_arg="action_id")
    async def cancel(
        self, action_id: str, expected_version: int, reason: str, ctx: CommandContext
    ) -> ActionResult:
        return await self._once(
            ctx, self._action_answer, lambda: self._cancel(action_id, expected_version, reason, ctx)
        )

    async def _cancel(
        self, action_id: str, expected_version: int, reason: str, ctx: CommandContext
    ) -> ActionResult:
        actor = ctx.actor
        reason = reason.strip()
        if not reason or len(reason) > 500:
            raise InvalidInput((Problem(("reason",), "must be 1–500 characters"),))
        state, head = await self._load_action(action_id)
        decided = ca.cancel(state, action_id, expected_version, reason)
        return await self._record_action(state, head, action_id, decided, ctx, actor)

    @traced_command("approve", aggregate_arg="action_id")
    async def approve(self, action_id: str, version: int, ctx: CommandContext) -> ActionResult:
        return await self._once(
            ctx, self._action_answer, lambda: self._approve(action_id, version, ctx)
        )

    async def _approve(self, action_id: str, version: int, ctx: CommandContext) -> ActionResult:
        actor = ctx.actor
        state, head = await self._load_action(action_id)
        decided = ca.approve(state, action_id, version, actor)
        return await self._record_action(state, head, action_id, decided, ctx, actor)

    async def _load_action(self, action_id: str) -> tuple[ca.CorporateAction | None, int]:
        """The action as its stream stands, and the global sequence of the
        stream's head (0: no stream), which the next event must follow."""
        stream = await self._store.load(action_id)
        return ca.replay(stream), _head_sequence(stream)

    async def _action_answer(self, stored: ev.EventEnvelope) -> ActionResult:
        """What the command that stored `stored` answered: the action as of that
        event (later events left out), the version it created or published."""
        history = await self._store.load(stored.aggregate_id)
        state = ca.replay(e for e in history if e.version <= stored.version)
        assert state is not None  # the stream holds `stored` itself
        return ActionResult(
            action=state, version=int(stored.payload["caVersion"]), token=_token(stored)
        )

    # --- one execution per Idempotency-Key ------------------------------------

    async def _once(
        self,
        ctx: CommandContext,
        answer: Callable[[ev.EventEnvelope], Awaitable[R]],
        run: Callable[[], Awaitable[R]],
    ) -> R:
        """Run the command unless its request already stored its event, and
        answer from that event if so. A resumed command that is refused is
        checked again: the stalled first execution may have stored its event
        between the look-up and the decision (the refusal would be of itself).
        `answer(event)` must rebuild exactly what `run()` answered once it
        stored `event`: the idempotency middleware records no response for
        such a command, and a repeat is answered by a resumed run."""
        earlier = await self._earlier(ctx)
        if earlier is None:
            try:
                result = await run()
            except (DomainError, InvalidInput):
                earlier = await self._earlier(ctx)
                if earlier is None:
                    raise
        if earlier is not None:
            result = await answer(earlier)
        # Either way the answer is the stored event's: a repeat rebuilds it.
        _event_stored(ctx, earlier=earlier is not None)
        return result

    async def _earlier(self, ctx: CommandContext) -> ev.EventEnvelope | None:
        command = ctx.command
        if command is None or not command.resumed:
            return None
        return await self._store.get(command_event_id(command.origin.command_id))

    async def _record_action(
        self,
        state: ca.CorporateAction | None,
        head: int,
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
            [stored] = await self._store.append([envelope], reservations, follows=head)
        except ConcurrencyError as exc:
            raise VersionConflict(
                f"corporate action {action_id} was changed concurrently; reload and retry"
            ) from exc
        except UniqueKeyTaken as exc:
            raise InvalidInput(
                (Problem(("reference",), f"reference {exc.key!r} is already used"),)
            ) from exc
        self._on_appended()
        if stored.version != envelope.version or stored.aggregate_id != envelope.aggregate_id:
            return await self._action_answer(stored)  # this command's event, stored earlier
        new_state = ca.apply(state, stored)
        return ActionResult(
            action=new_state,
            version=int(decided.payload["caVersion"]),
            token=_token(stored),
        )

    # --- positions ------------------------------------------------------------

    @traced_command("record_positions")
    async def record_positions(
        self, payload: Mapping[str, Any], ctx: CommandContext, *, attempts: int = 3
    ) -> PositionsResult:
        """A later snapshot for the same isin and date replaces the earlier one.

        The positions are stored first under a new snapshot id; the event only
        names it (claim check), so 100 000 accounts never travel through Kafka.
        Both are idempotent by id: under an Idempotency-Key the snapshot id and
        the event id derive from the command id, so a resumed command rewrites
        nothing and appends no second event.
        """
        return await self._once(
            ctx, _positions_answer, lambda: self._record_positions(payload, ctx, attempts)
        )

    async def _record_positions(
        self, payload: Mapping[str, Any], ctx: CommandContext, attempts: int
    ) -> PositionsResult:
        actor = ctx.actor
        snapshot = parse_positions(payload)
        aggregate_id = positions_aggregate_id(snapshot.isin, snapshot.as_of.isoformat())
        command = ctx.command
        snapshot_id = (
            new_event_id() if command is None else command_snapshot_id(command.origin.command_id)
        )
        await self._positions.save(snapshot_id, snapshot)
        decided = ev.NewEvent(
            ev.POSITIONS_RECORDED,
            {
                "isin": snapshot.isin,
                "asOf": snapshot.as_of.isoformat(),
                "snapshotId": snapshot_id,
                "accounts": len(snapshot.positions),
            },
        )
        for attempt in range(attempts):
            existing = await self._store.load(aggregate_id)
            version = (existing[-1].version if existing else 0) + 1
            envelope = self._envelope(
                ev.AGGREGATE_POSITIONS, aggregate_id, version, decided, ctx, actor
            )
            try:
                [stored] = await self._store.append([envelope], follows=_head_sequence(existing))
            except ConcurrencyError:
                if attempt == attempts - 1:
                    raise VersionConflict(
                        f"positions {aggregate_id} are being recorded concurrently; retry"
                    ) from None
                continue
            self._on_appended()
            return _positions_answer_now(stored)
        raise AssertionError("unreachable")

    # --- notices --------------------------------------------------------------

    @traced_command("acknowledge_notice", aggregate_arg="notice_id")
    async def acknowledge_notice(
        self, notice_id: str, ctx: CommandContext, notices: NoticeLookup, *, attempts: int = 3
    ) -> AckResult:
        """The depositor has read the current version of one of their notices.

        A notice of an account not in the caller's token is not found, exactly
        like a notice that does not exist. Acknowledging a version already
        acknowledged records nothing new and answers with the first
        acknowledgement; a later version of the notice (an update) needs its
        own.

        The answer shows the notice as the read model holds it, which a later
        issue of the notice replaces: the request's response is recorded (a
        repeat replays it), not rebuilt from the event. Only a resumed request
        (its first run stored the event but recorded no answer: it stalled or
        failed) answers from its stored acknowledgement and the notice as it
        now stands: the first answer byte for byte while the notice stands at
        the version acknowledged; once the notice was issued again, that
        version's content is gone and the notice is shown as it now stands.
        """
        actor = ctx.actor
        if ctx.command is not None:
            ctx.command.outcome.reads_live_state()
        notice = await notices.get_for_accounts(notice_id, ctx.principal.accounts)
        if notice is None:
            raise NotFound(f"notice {notice_id} not found")
        mine = await self._earlier(ctx)
        if mine is not None:
            _event_stored(ctx, earlier=True)
            if notice.version != mine.payload.get("noticeVersion"):
                # issued again since: this version's content is gone from the
                # read model; answer the notice as it now stands
                return AckResult(notice, notice.acknowledged_at or mine.occurred_at, _token(mine))
            return _ack_result(notice, mine)
        notice_version = notice.version
        decided = ev.NewEvent(
            ev.NOTICE_ACKNOWLEDGED,
            {
                "noticeId": notice_id,
                "noticeVersion": notice_version,
                "corporateActionId": notice.corporate_action_id,
                "accountId": notice.account_id,
            },
        )
        for _ in range(attempts):
            stream = await self._store.load(notice_id)
            earlier = _acknowledgement_of(stream, notice_version)
            if earlier is not None:
                # another request's acknowledgement (or this command's own,
                # stored by a stalled first execution)
                if earlier.event_id == _command_event(ctx):
                    _event_stored(ctx, earlier=True)
                return _ack_result(notice, earlier)
            version = (stream[-1].version if stream else 0) + 1
            envelope = self._envelope(ev.AGGREGATE_NOTICE, notice_id, version, decided, ctx, actor)
            try:
                [stored] = await self._store.append([envelope], follows=_head_sequence(stream))
            except ConcurrencyError:
                continue  # a concurrent acknowledgement won: the next round finds it
            self._on_appended()
            _event_stored(ctx)
            return _ack_result(notice, stored)
        raise VersionConflict(f"notice {notice_id} is being acknowledged concurrently; retry")

    def _envelope(
        self,
        aggregate_type: str,
        aggregate_id: str,
        version: int,
        decided: ev.NewEvent,
        ctx: CommandContext,
        actor: str,
    ) -> ev.EventEnvelope:
        command = ctx.command
        now = self._clock()
        return ev.EventEnvelope(
            event_id=new_event_id()
            if command is None
            else command_event_id(command.origin.command_id),
            event_name=decided.event_name,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            version=version,
            # the stores keep milliseconds: the first answer shows what a replay will
            occurred_at=now.replace(microsecond=now.microsecond // 1000 * 1000),
            actor=actor,
            correlation_id=ctx.correlation_id,
            payload=decided.payload,
            origin=None if command is None else command.origin,
            trace_context=current_trace_context(),
        )


class StoredCommandEvents:
    """`domain.ports.StoredCommands` from the event record: a command stored
    its event when the id derived from its command id (`command_event_id`)
    names one. Raises StoreError."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def stored(self, command_id: str) -> bool:
        return await self._store.get(command_event_id(command_id)) is not None


def _event_stored(ctx: CommandContext, *, earlier: bool = False) -> None:
    """Tell the request (if any) that its answer is its stored event's
    (`earlier`: stored by an earlier run of the command)."""
    if ctx.command is not None:
        ctx.command.outcome.event_stored(earlier=earlier)


def _command_event(ctx: CommandContext) -> str | None:
    command = ctx.command
    return None if command is None else command_event_id(command.origin.command_id)


def _token(event: ev.EventEnvelope) -> ConsistencyToken:
    return ConsistencyToken(event.aggregate_type, event.aggregate_id, event.version, event.sequence)


async def _positions_answer(stored: ev.EventEnvelope) -> PositionsResult:
    return _positions_answer_now(stored)


def _positions_answer_now(stored: ev.EventEnvelope) -> PositionsResult:
    return PositionsResult(int(stored.payload["accounts"]), _token(stored))


def _acknowledgement_of(
    stream: list[ev.EventEnvelope], notice_version: int
) -> ev.EventEnvelope | None:
    for event in stream:
        if (
            event.event_name == ev.NOTICE_ACKNOWLEDGED
            and event.payload.get("noticeVersion") == notice_version
        ):
            return event
    return None


def _ack_result(notice: StoredNotice, event: ev.EventEnvelope) -> AckResult:
    # The stores keep milliseconds: answer with the time the notice will show.
    at = event.occurred_at.replace(microsecond=event.occurred_at.microsecond // 1000 * 1000)
    return AckResult(
        notice=replace(notice, acknowledged_at=at), acknowledged_at=at, token=_token(event)
    )


def _head_sequence(stream: Sequence[ev.EventEnvelope]) -> int:
    """The global sequence of a loaded stream's head, which an event appended
    to it follows (0: a new stream)."""
    return stream[-1].sequence if stream else 0
