"""IdempotencyMiddleware: the same Idempotency-Key executes a mutation once.

The backend half of invariant 3 (the nginx edge filters duplicates first and
lets requests through when its Redis is down). Only `POST /graphql` requests
whose selected operation is a mutation are concerned; queries, GETs and
everything else pass through untouched. A mutation sent over the GraphQL
WebSocket (which strawberry would execute, key-less) is refused there with a
protocol error: mutations go by POST.

For a mutation the caller must send `Idempotency-Key` (1–255 visible ASCII
characters). The key is scoped to the caller's token subject. The first
request claims the key in the store ("in flight"), runs, and the response is
recorded before the caller hears it. A repeat then gets:

- the recorded response again, with `Idempotent-Replayed: true`, when the
  body is the same (same fingerprint of the canonical request);
- 409 while the first request is still running;
- 422 when the body differs.

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
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
    parse,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.commands import CURRENT_COMMAND, RequestCommand
from domain.idempotency import CallerKey, IdempotencyRecord, StoredResponse
from domain.ports import IdempotencyStore, StoreError
from observability import metrics
from queries.documents import MAX_TOKENS, operation_type
from queries.errors import (
    BAD_USER_INPUT,
    IDEMPOTENCY_KEY_REUSED,
    REQUEST_IN_PROGRESS,
    SERVICE_UNAVAILABLE,
)
from queries.extensions import INTERNAL
from web.asgi import (
    BodyEnd,
    CapturedResponse,
    buffer_body,
    declared_too_large,
    replaying,
    send_response,
)
from web.auth import principal_from_scope
from web.problems import Problem, malformed, send_problem

__all__ = [
    "MAX_KEY_LENGTH",
    "IdempotencyMiddleware",
    "InvalidIdempotencyKey",
    "idempotency_key",
    "is_mutation_request",
    "is_server_failure",
    "mutation_field_count",
    "request_fingerprint",
]

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
HEADER = b"idempotency-key"
REPLAYED_HEADER = (b"idempotent-replayed", b"true")
# Response headers that belong to the answer itself and are replayed with it.
# Per-request headers (correlation id, length, date, server) are not.
RECORDED_HEADERS = frozenset({"content-type", "content-language"})
# GraphQL error codes that mean "the server failed", whatever the HTTP status.
SERVER_FAILURE_CODES = frozenset({INTERNAL, SERVICE_UNAVAILABLE})


# --- the pure parts ----------------------------------------------------------------


class InvalidIdempotencyKey(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def _key_missing(detail: str) -> InvalidIdempotencyKey:
    problem = Problem(
        400,
        "idempotency-key-missing",
        "Idempotency-Key required",
        detail,
        "IDEMPOTENCY_KEY_MISSING",
    )
    return InvalidIdempotencyKey(problem)


def _key_invalid(detail: str) -> InvalidIdempotencyKey:
    problem = Problem(
        400, "idempotency-key-invalid", "Invalid Idempotency-Key", detail, "IDEMPOTENCY_KEY_INVALID"
    )
    return InvalidIdempotencyKey(problem)


def idempotency_key(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The request's Idempotency-Key, or InvalidIdempotencyKey naming what is wrong."""
    values = [value for name, value in headers if name.lower() == HEADER]
    if not values or values == [b""]:
        raise _key_missing("a mutation must carry an Idempotency-Key header (1-255 characters)")
    if len(values) > 1:
        raise _key_invalid("send exactly one Idempotency-Key header")
    raw = values[0]
    if len(raw) > MAX_KEY_LENGTH:
        raise _key_invalid(f"the Idempotency-Key is longer than {MAX_KEY_LENGTH} characters")
    if not all(0x21 <= byte <= 0x7E for byte in raw):
        raise _key_invalid("the Idempotency-Key must be visible ASCII characters only")
    return raw.decode("ascii")


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """sha256 of the canonical request: whitespace and key order in the JSON body
    do not matter, any difference in value (variables included) does."""
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def is_mutation_request(body: Any) -> bool:
    """True when the GraphQL request body (or any request of a batch) selects a
    mutation. A request whose operation cannot be determined is not one: the
    GraphQL layer uses the same parser and refuses it without executing."""
    if isinstance(body, list):
        return any(is_mutation_request(item) for item in body)
    if not isinstance(body, dict):
        return False
    query = body.get("query")
    operation_name = body.get("operationName")
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        return False
    return operation_type(query, operation_name) is OperationType.MUTATION


def mutation_field_count(body: Any) -> int:
    """How many mutation fields the request (or all requests of a batch) selects
    at the root, aliases and fragments counted; `__typename` is not a mutation."""
    if isinstance(body, list):
        return sum(mutation_field_count(item) for item in body)
    if not isinstance(body, dict):
        return 0
    query = body.get("query")
    operation_name = body.get("operationName")
    if not isinstance(query, str) or not isinstance(operation_name, str | None):
        return 0
    return _root_mutation_fields(query, operation_name)


@lru_cache(maxsize=256)
def _root_mutation_fields(query: str, operation_name: str | None) -> int:
    try:
        document = parse(query, no_location=True, max_tokens=MAX_TOKENS)
    except (GraphQLError, RecursionError):
        return 0  # the GraphQL layer refuses it without executing
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return 0
    fragments = {
        d.name.value: d.selection_set
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }

    def count(selection_set: SelectionSetNode, seen: frozenset[str]) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += selection.name.value != "__typename"
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in fragments and name not in seen:  # a cycle fails validation
                    total += count(fragments[name], seen | {name})
        return total

    return count(operation.selection_set, frozenset())


# --- the middleware ----------------------------------------------------------------


def _to_stored(captured: CapturedResponse) -> StoredResponse:
    headers = tuple(
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, value in captured.headers
        if name.decode("latin-1").lower() in RECORDED_HEADERS
    )
    return StoredResponse(captured.status, headers, bytes(captured.body))


def is_server_failure(response: StoredResponse) -> bool:
    """A failure of the server, not an answer: 5xx, or a GraphQL error that the
    schema coded as internal or unavailable (those come with HTTP 200)."""
    if response.status >= 500:
        return True
    content_type = dict(response.headers).get("content-type", "")
    if "json" not in content_type:
        return False
    try:
        payload = json.loads(response.body)
    except ValueError:
        return False
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list):
        return False
    return any(
        isinstance(error, dict)
        and isinstance(error.get("extensions"), dict)
        and error["extensions"].get("code") in SERVER_FAILURE_CODES
        for error in errors
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        store: IdempotencyStore,
        *,
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
        self.ttl = timedelta(seconds=ttl_seconds)
        self.lease = timedelta(seconds=lease_seconds)
        self.max_body_bytes = max_body_bytes
        self.path = path
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.app(scope, _without_mutations(receive, send), send)
            return
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        buffered = None
        if not declared_too_large(scope, self.max_body_bytes):
            buffered = await buffer_body(receive, self.max_body_bytes)
        if buffered is None or buffered.end is BodyEnd.TOO_LARGE:
            await send_problem(send, _too_large(self.max_body_bytes))
            return
        if buffered.end is BodyEnd.DISCONNECTED:
            return
        body = buffered.body
        replay_receive = replaying(body, receive)
        try:
            payload = _json_or_none(body)
        except RecursionError:  # the GraphQL layer's own json.loads would answer 500
            await send_problem(send, _too_deep())
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
            await send_problem(send, _several_mutations())
            return
        now = self.clock()
        record = IdempotencyRecord(
            caller_key=CallerKey(principal_from_scope(scope).subject, key),
            fingerprint=request_fingerprint("POST", self.path, payload),
            claim_id=uuid.uuid4().hex,
            claimed_at=now,
            expires_at=now + self.ttl,
        )
        try:
            claim = await self._claim(record)
        except StoreError as exc:
            # Fail closed: without the store we cannot tell a retry from a first
            # request, and a bank would rather refuse a command than run it twice.
            log.warning("idempotency store unavailable, refusing the mutation: %s", exc)
            metrics.IDEMPOTENCY.labels("store_unavailable").inc()
            await send_problem(send, _store_unavailable())
            return
        if isinstance(claim, _Held):
            await self._answer_repeat(claim.record, record, send)
            return
        metrics.IDEMPOTENCY.labels("executed").inc()
        await self._execute(claim, scope, replay_receive, send)

    async def _claim(self, record: IdempotencyRecord) -> _Claimed | _Held:
        """Claim the key, taking over a claim that expired, was abandoned or was
        released: _Claimed with the record we hold (its command id kept from the
        claim taken over when the body is the same), else _Held."""
        held: IdempotencyRecord | None = None
        for _ in range(3):  # a takeover can lose to another one: look again
            held = await self.store.claim(record)
            if held is None:
                return _Claimed(record, resumed=False)
            if not self._may_take_over(held, record):
                return _Held(held)
            resumes = held.response is None and held.fingerprint == record.fingerprint
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

    def _may_take_over(self, held: IdempotencyRecord, record: IdempotencyRecord) -> bool:
        if held.expires_at <= record.claimed_at:
            return True  # expired but not yet swept by the TTL monitor: the key is free
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
            await send_problem(send, _key_reused())
        elif held.response is None:
            metrics.IDEMPOTENCY.labels("in_flight").inc()
            await send_problem(send, _in_progress())
        else:
            metrics.IDEMPOTENCY.labels("replay").inc()
            await _send_replay(send, held.response)

    async def _execute(self, claim: _Claimed, scope: Scope, receive: Receive, send: Send) -> None:
        record = claim.record
        captured = CapturedResponse()
        command = CURRENT_COMMAND.set(RequestCommand(record.origin(), resumed=claim.resumed))
        try:
            await self.app(scope, receive, captured.send)
        except BaseException:
            await self._release(record)
            raise
        finally:
            CURRENT_COMMAND.reset(command)
        response = _to_stored(captured)
        if not captured.complete or is_server_failure(response):
            await self._release(record)
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
class _Held:
    """Another request holds (or completed) the key."""

    record: IdempotencyRecord


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # not JSON: the GraphQL layer refuses it without executing
        return None


def _without_mutations(receive: Receive, send: Send) -> Receive:
    """A WebSocket `receive` that answers a mutation with a protocol error instead
    of handing it to the app: graphql-transport-ws would run it with no key."""

    async def receive_no_mutation() -> Message:
        while True:
            message = await receive()
            operation_id = _websocket_mutation_id(message)
            if operation_id is None:
                return message
            error = {
                "message": "send mutations by HTTP POST with an Idempotency-Key header",
                "extensions": {"code": "IDEMPOTENCY_KEY_MISSING"},
            }
            reply = {"id": operation_id, "type": "error", "payload": [error]}
            await send({"type": "websocket.send", "text": json.dumps(reply)})

    return receive_no_mutation


def _websocket_mutation_id(message: Message) -> Any:
    """The operation id of a frame that starts a mutation, else None."""
    text = message.get("text") if message["type"] == "websocket.receive" else None
    if not text:
        return None
    try:
        frame = _json_or_none(text.encode())
    except RecursionError:
        return None
    if not isinstance(frame, dict) or frame.get("type") not in ("subscribe", "start"):
        return None
    if not is_mutation_request(frame.get("payload")):
        return None
    return frame.get("id", "")


def _key_reused() -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        "this Idempotency-Key was already used with a different request body",
        IDEMPOTENCY_KEY_REUSED,
    )


def _in_progress() -> Problem:
    return Problem(
        409,
        "request-in-progress",
        "Request in progress",
        "a request with this Idempotency-Key is still being processed; retry later",
        REQUEST_IN_PROGRESS,
    )


def _several_mutations() -> Problem:
    return Problem(
        400,
        "one-mutation-per-key",
        "One mutation per Idempotency-Key",
        "a request under an Idempotency-Key selects exactly one mutation field; send each "
        "mutation as a request of its own, with its own key (nothing was executed)",
        BAD_USER_INPUT,
    )


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "request-too-large",
        "Request body too large",
        f"the request body is larger than {limit} bytes",
        "REQUEST_TOO_LARGE",
    )


def _too_deep() -> Problem:
    return malformed("the request body is JSON nested too deeply to read")


def _store_unavailable() -> Problem:
    return Problem(
        503,
        "idempotency-unavailable",
        "Service unavailable",
        "the Idempotency-Key cannot be checked right now; nothing was executed, retry later",
        SERVICE_UNAVAILABLE,
    )


async def _send_replay(send: Send, response: StoredResponse) -> None:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers
    ]
    await send_response(send, response.status, [*headers, REPLAYED_HEADER], response.body)
