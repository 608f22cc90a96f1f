"""IdempotencyMiddleware: the same Idempotency-Key executes a mutation once.

The backend half of invariant 3 (the nginx edge filters duplicates first and
lets requests through when its Redis is down). Only `POST /graphql` requests
whose selected operation is a mutation are concerned; queries, GETs and
everything else pass through untouched. A mutation sent over the GraphQL
WebSocket (which strawberry would execute, key-less) is refused there with a
protocol error: mutations go by POST.

For a mutation the caller must send `Idempotency-Key` (1–255 visible ASCII
characters). The key is scoped to the caller's token subject. The first
request claims the key in the store ("in flight", kept a TTL plus a lease),
runs, and its answer is on record before the caller hears it, in one of two
ways:

- the command stored its event and answered from it alone (the handler says
  so: `RequestCommand.outcome`): the stored event *is* the record and no
  response is written (one durable write fewer per command). The claim stays
  "in flight"; a repeat asks `StoredCommands` whether its command stored its
  event, runs the request again *resumed* (the handler finds the event and
  rebuilds, as of its version, what the first execution answered; it appends
  nothing) and sends that answer (a rebuild refused to this caller, whose
  token lost the role or account since, is sent as it is, not as a replay);
- any other answer (a refusal, invalid input, a command that stored nothing,
  or an answer that shows live state, e.g. `noticeStats` or `deliveries`,
  which a rebuild would not reproduce) is recorded, a document of its own.

A repeat with the same body (same fingerprint of the canonical request) then
gets the first answer again, recorded or rebuilt, with
`Idempotent-Replayed: true`; 409 while the first request still runs and has
stored nothing (with `Retry-After`: about as long as it has run, at most
the seconds left on the claim's lease);
422 when the body differs.

One mutation per key: a request under an Idempotency-Key selects exactly one
mutation field. A request selecting several (aliases, fragments, a batch) is
refused with 400 `BAD_USER_INPUT` before anything runs, so a key always
stands for one command and one outcome.

One decision per key, stored with the effect: each claim carries a command
id, and the command's events are stored under ids derived from it (and carry
the key and fingerprint, see `domain.events.CommandOrigin`). The command id
survives what can interrupt a request between its write and its answer:

- a response that reports a server failure (HTTP 5xx, or a GraphQL error
  coded `INTERNAL_SERVER_ERROR` / `SERVICE_UNAVAILABLE`) is not recorded: the
  claim is *released* (not forgotten), so a retry of the same body runs
  again under the same command id (a different body may then take the key,
  as a new command);
- an in-flight claim older than the lease is taken as abandoned (its process
  died, or stalled) and the next request with the same body takes it over,
  under the same command id.

Such a resumed command first looks for the events its id names: found, it
answers from them what the first execution answered (rebuilt from the stored
events), without deciding again; not found, it runs. A duplicate event id on
append means "already written" (adapters.mongo.event_store), so even a
resumed command racing the stalled original stores its events once.

A claim ends once: the first of its recorded response, its release, or the
takeover that found it abandoned stands (`IdempotencyStore`). A request that
finishes after its claim was taken over still answers its caller but records
nothing; the key is answered by the takeover's execution of the same command.
An in-flight claim whose command stored its event is never taken over: its
repeats are rebuilt, writing nothing (one key, one execution: the event is
stored once, under the id its command id names).

A store that fails while the key is claimed answers 503 (nothing executed);
the claim may have been written all the same (its answer lost), so the 503
says that a retry may answer 409 until the claim's lease
(HERALD_IDEMPOTENCY_LEASE_SECONDS) ends.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from starlette.types import ASGIApp, Receive, Scope, Send

from domain.commands import CURRENT_COMMAND, RequestCommand
from domain.idempotency import CallerKey, IdempotencyRecord
from domain.ports import IdempotencyStore, StoredCommands, StoreError
from observability import metrics
from web.asgi import BodyEnd, CapturedResponse, buffer_body, declared_too_large, replaying
from web.auth import principal_from_scope
from web.idempotency import problems
from web.idempotency.requests import (
    InvalidIdempotencyKey,
    idempotency_key,
    is_mutation_request,
    json_or_none,
    mutation_field_count,
    request_fingerprint,
)
from web.idempotency.responses import is_server_failure, send_replay, to_stored
from web.idempotency.websocket import without_mutations
from web.problems import send_problem

__all__ = ["DEFAULT_MAX_BODY_BYTES", "IdempotencyMiddleware"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        store: IdempotencyStore,
        *,
        stored: StoredCommands | None = None,
        ttl_seconds: float = 86_400,
        lease_seconds: float = 60.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        path: str = "/graphql",
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        assert ttl_seconds >= 86_400, "the contract keeps keys at least 24 hours"
        assert 0 < lease_seconds < ttl_seconds
        self.app = app
        self.store = store
        # None: every answer is recorded (nothing to rebuild answers from)
        self.stored = stored
        self.ttl = timedelta(seconds=ttl_seconds)
        self.lease = timedelta(seconds=lease_seconds)
        self.max_body_bytes = max_body_bytes
        self.path = path
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.app(scope, without_mutations(receive, send), send)
            return
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        buffered = None
        if not declared_too_large(scope, self.max_body_bytes):
            buffered = await buffer_body(receive, self.max_body_bytes)
        if buffered is None or buffered.end is BodyEnd.TOO_LARGE:
            await send_problem(send, problems.too_large(self.max_body_bytes))
            return
        if buffered.end is BodyEnd.DISCONNECTED:
            return
        body = buffered.body
        replay_receive = replaying(body, receive)
        try:
            payload = json_or_none(body)
        except RecursionError:  # the GraphQL layer's own json.loads would answer 500
            await send_problem(send, problems.too_deep())
            return
        if payload is None or not is_mutation_request(payload):
            await self.app(scope, replay_receive, send)
            return
        try:
            key = idempotency_key(scope.get("headers", []))
        except InvalidIdempotencyKey as exc:
            await send_problem(send, exc.problem)
            return
        if mutation_field_count(payload) > 1:
            await send_problem(send, problems.several_mutations())
            return
        now = self.clock()
        record = IdempotencyRecord(
            caller_key=CallerKey(principal_from_scope(scope).subject, key),
            fingerprint=request_fingerprint("POST", self.path, payload),
            claim_id=uuid.uuid4().hex,
            claimed_at=now,
            # A claim whose answer is its stored event is never completed: it
            # keeps the key a TTL after any answer given within the lease.
            expires_at=now + self.ttl + self.lease,
        )
        try:
            claim = await self._claim(record, rebuild=True)
            if isinstance(claim, _Stored):
                if await self._replay_rebuilt(claim.record, scope, body, receive, send):
                    return
                # its answer cannot be rebuilt after all: as for any in-flight claim
                claim = await self._claim(record, rebuild=False)
        except StoreError as exc:
            # Fail closed: without the store we cannot tell a retry from a first
            # request, and a bank would rather refuse a command than run it twice.
            log.warning("idempotency store unavailable, refusing the mutation: %s", exc)
            metrics.IDEMPOTENCY.labels("store_unavailable").inc()
            await send_problem(send, problems.store_unavailable(self.lease.total_seconds()))
            return
        if isinstance(claim, _Held):
            await self._answer_repeat(claim.record, record, send)
            return
        assert isinstance(claim, _Claimed)
        metrics.IDEMPOTENCY.labels("executed").inc()
        await self._execute(claim, scope, replay_receive, send)

    async def _claim(
        self, record: IdempotencyRecord, *, rebuild: bool
    ) -> _Claimed | _Held | _Stored:
        """Claim the key, taking over a claim that expired, was abandoned or was
        released: _Claimed with the record we hold (its command id kept from the
        claim taken over when the body is the same), else _Held. With
        `rebuild`, an unexpired in-flight claim of the same body whose command
        stored its event is _Stored: its answer is rebuilt, nothing written."""
        held: IdempotencyRecord | None = None
        for _ in range(3):  # a takeover can lose to another one: look again
            held = await self.store.claim(record)
            if held is None:
                return _Claimed(record, resumed=False)
            if rebuild and await self._answered_by_event(held, record):
                return _Stored(held)
            if not self._may_take_over(held, record):
                return _Held(held)
            # (an expired claim's key is free: its next request is a new command)
            resumes = (
                held.response is None
                and held.fingerprint == record.fingerprint
                and held.expires_at > record.claimed_at
            )
            ours = replace(record, command_id=held.command_id) if resumes else record
            if await self.store.take_over(held, ours):
                log.info(
                    "idempotency key %r taken over from a%s claim%s",
                    record.caller_key,
                    " released" if held.released else "n abandoned",
                    "; resuming its command" if resumes else "",
                )
                return _Claimed(ours, resumed=resumes)
        assert held is not None
        return _Held(held)

    async def _answered_by_event(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        """`held` is an unexpired claim of the same body, in flight (running,
        or its answer not recorded), and its command stored its event."""
        return (
            self.stored is not None
            and held.in_flight
            and held.fingerprint == record.fingerprint
            and held.expires_at > record.claimed_at
            and await self.stored.stored(held.command_id)
        )

    async def _replay_rebuilt(
        self, held: IdempotencyRecord, scope: Scope, body: bytes, receive: Receive, send: Send
    ) -> bool:
        """Answer a repeat of `held`'s request by running it again resumed: the
        handler finds the stored event and rebuilds the first answer from it,
        storing nothing. Sent as it came, neither replay nor record, when the
        run did not answer from the event: a server failure (the caller
        retries), or a refusal of this caller (its token no longer carries
        the role or account; the key's event stays its record). False
        (nothing sent) when the answer shows live state, which the first
        request records: the repeat is then treated as for any in-flight
        claim (409 within its lease, else a takeover that records)."""
        captured = CapturedResponse()
        command = RequestCommand(held.origin(), resumed=True)
        token = CURRENT_COMMAND.set(command)
        try:
            await self.app(scope, replaying(body, receive), captured.send)
        finally:
            CURRENT_COMMAND.reset(token)
        if not captured.complete:
            return False  # the caller went away: nothing to answer
        response = to_stored(captured)
        if is_server_failure(response) or not command.outcome.stored:
            metrics.IDEMPOTENCY.labels("rebuild_failed").inc()
            await captured.flush(send)
            return True
        if command.outcome.live:
            return False
        metrics.IDEMPOTENCY.labels("replay").inc()
        await send_replay(send, response)
        return True

    def _may_take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        if held.expires_at <= record.claimed_at:
            return True  # expired but not yet swept: the key is free
        if held.released:
            return True  # its request ended in a server failure: the key is free
        # A key stays bound to its first body for as long as its record lives, so
        # an abandoned claim is only taken over by the same request (else 422).
        return (
            held.in_flight
            and held.fingerprint == record.fingerprint
            and held.claimed_at <= record.claimed_at - self.lease
        )

    async def _answer_repeat(
        self, held: IdempotencyRecord, record: IdempotencyRecord, send: Send
    ) -> None:
        if held.fingerprint != record.fingerprint:
            metrics.IDEMPOTENCY.labels("mismatch").inc()
            await send_problem(send, problems.key_reused())
        elif held.response is None:
            metrics.IDEMPOTENCY.labels("in_flight").inc()
            # Retry after about as long as the first request has run (most
            # answer within a second), never past the lease: then a retry
            # takes an abandoned claim over.
            ran = (record.claimed_at - held.claimed_at).total_seconds()
            left = (held.claimed_at + self.lease - record.claimed_at).total_seconds()
            await send_problem(send, problems.in_progress(math.ceil(min(max(ran, 1.0), left))))
        else:
            metrics.IDEMPOTENCY.labels("replay").inc()
            await send_replay(send, held.response)

    async def _execute(self, claim: _Claimed, scope: Scope, receive: Receive, send: Send) -> None:
        record = claim.record
        captured = CapturedResponse()
        command_run = RequestCommand(record.origin(), resumed=claim.resumed)
        command = CURRENT_COMMAND.set(command_run)
        try:
            await self.app(scope, receive, captured.send)
        except BaseException:
            await self._release(record)
            raise
        finally:
            CURRENT_COMMAND.reset(command)
        response = to_stored(captured)
        if not captured.complete or is_server_failure(response):
            await self._release(record)
        elif self.stored is not None and command_run.outcome.rebuildable:
            # The stored event is the record: a repeat finds it and rebuilds this
            # answer (`_replay_rebuilt`); one durable write fewer per command.
            pass
        else:
            # Recorded before the caller hears it: a repeat sent after the answer
            # always replays. If recording fails the command has run all the same,
            # so the caller still gets its answer; the claim stays in flight until
            # its lease runs out.
            try:
                recorded = await self.store.complete(record, response, self.clock() + self.ttl)
                if not recorded:
                    log.warning(
                        "idempotency claim %r was taken over mid-request", record.caller_key
                    )
            except StoreError as exc:
                log.warning("could not record the response of %r: %s", record.caller_key, exc)
        await captured.flush(send)

    async def _release(self, record: IdempotencyRecord) -> None:
        try:
            await self.store.release(record)
        except StoreError as exc:  # the lease frees the key later
            log.warning("could not release idempotency claim %r: %s", record.caller_key, exc)


@dataclass(frozen=True)
class _Claimed:
    """The key is ours; `resumed`: an earlier execution of its command may have
    stored its events (an abandoned or released claim of the same body)."""

    record: IdempotencyRecord
    resumed: bool


@dataclass(frozen=True)
class _Stored:
    """An in-flight claim of the same body whose command stored its event:
    the repeat is answered by rebuilding that command's answer."""

    record: IdempotencyRecord


@dataclass(frozen=True)
class _Held:
    """Another request holds (or completed) the key."""

    record: IdempotencyRecord
