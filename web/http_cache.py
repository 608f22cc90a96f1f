"""PublicCacheMiddleware: anonymous card reads answered from memory, with ETags.

An anonymous `GET` or `POST /graphql` whose operation is a query selecting
only public root fields (the card fields the app names) is cached in process,
keyed by (document, operation name, variables) and valid for one value of the
published-data watermark — which changes the moment a card is published, so
a new publication is never answered from an older entry. Only complete
answers are kept (HTTP 200 without GraphQL errors).

Such answers carry a strong `ETag` (the sha256 of the body) and
`Cache-Control: public, max-age=<short>`; a request whose `If-None-Match`
names the current ETag gets `304 Not Modified` and no body. Concurrent misses
of one key run the query once. Everything else on the endpoint — any request
with credentials, mutations, other queries — is passed through and marked
`Cache-Control: private, no-store` (authenticated) or `no-store`; all carry
`Vary: Authorization`, so no shared cache hands a public answer to a caller
with a token or the other way round. With `enabled=False` (a CDN in front
does the caching) nothing is kept and every answer is marked as above.

No business rule lives here: what is public is the app's `public_root_fields`
and the schema's own refusals (a field the public may not read answers with
an error, and errors are never cached).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from graphql import OperationType
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability import metrics
from queries.documents import read_operation
from web.asgi import (
    BodyEnd,
    CapturedResponse,
    buffer_body,
    declared_too_large,
    replaying,
    send_response,
)
from web.auth import principal_from_scope

__all__ = ["CACHE_STATUS_HEADER", "PublicCacheMiddleware"]

CACHE_STATUS_HEADER = "x-herald-cache"  # hit | miss | bypass: for operators and benchmarks
PRIVATE = b"private, no-store"
NO_STORE = b"no-store"
VARY = b"Authorization"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class _Entry:
    watermark: Hashable
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    etag: bytes

    @property
    def size(self) -> int:
        return len(self.body) + 256


class PublicCacheMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        watermark: Callable[[], Hashable | None],
        public_root_fields: frozenset[str],
        max_age_seconds: int = 5,
        max_entries: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        path: str = "/graphql",
        enabled: bool = True,
    ) -> None:
        assert max_age_seconds >= 0 and max_entries > 0
        self.app = app
        self.watermark = watermark
        self.public_root_fields = public_root_fields | {"__typename"}
        self.cache_control = f"public, max-age={max_age_seconds}".encode()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_body_bytes = max_body_bytes
        self.path = path
        self.enabled = enabled
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._inflight: dict[str, asyncio.Future[_Entry | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if (
            principal_from_scope(scope).is_authenticated
            or headers.get(b"authorization", b"").strip()
        ):
            metrics.PUBLIC_CACHE.labels("private").inc()
            await self.app(scope, receive, _marked(send, PRIVATE))
            return
        if not self.enabled:
            metrics.PUBLIC_CACHE.labels("bypass").inc()
            await self.app(scope, receive, _marked(send, NO_STORE, cache="bypass"))
            return
        request, receive = await self._read_request(scope, receive)
        if request is None or not self._is_public_read(request):
            metrics.PUBLIC_CACHE.labels("bypass").inc()
            await self.app(scope, receive, _marked(send, NO_STORE, cache="bypass"))
            return
        key = _key(request)
        if_none_match = headers.get(b"if-none-match")
        watermark = self.watermark()
        entry = self._lookup(key, watermark)
        cache = "hit"
        if entry is None:
            cache = "miss"
            entry = await self._fill(key, watermark, scope, receive, send)
            if entry is None:
                metrics.PUBLIC_CACHE.labels("bypass").inc()
                return  # answered as it came (not cacheable)
        await self._answer(entry, if_none_match, send, cache)

    # --- what may be cached ---------------------------------------------------

    async def _read_request(
        self, scope: Scope, receive: Receive
    ) -> tuple[dict[str, Any] | None, Receive]:
        if scope["method"] == "GET":
            return _from_query_string(scope.get("query_string", b"")), receive
        if scope["method"] != "POST":
            return None, receive
        headers = dict(scope.get("headers", []))
        if b"application/json" not in headers.get(b"content-type", b"").lower():
            return None, receive
        if declared_too_large(scope, self.max_body_bytes):
            return None, receive
        buffered = await buffer_body(receive, self.max_body_bytes)
        if buffered.end is BodyEnd.DISCONNECTED:
            return None, replaying(buffered.body, receive, disconnected=True)
        replay = replaying(buffered.body, receive)
        if buffered.end is BodyEnd.TOO_LARGE:
            return None, replay
        try:
            payload = json.loads(buffered.body)
        except (ValueError, RecursionError):
            return None, replay
        return (payload if isinstance(payload, dict) else None), replay

    def _is_public_read(self, request: dict[str, Any]) -> bool:
        query = request.get("query")
        operation_name = request.get("operationName")
        variables = request.get("variables")
        if not isinstance(query, str) or not isinstance(operation_name, str | None):
            return False
        if not isinstance(variables, dict | None):
            return False
        # read_operation keeps a summary per document (bounded): nothing to cache here
        operation = read_operation(query, operation_name)
        if operation is None or operation.kind != OperationType.QUERY:
            return False
        fields = operation.root_fields
        return fields is not None and fields <= self.public_root_fields

    # --- the cache ---------------------------------------------------------------

    def _lookup(self, key: str, watermark: Hashable | None) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or watermark is None or entry.watermark != watermark:
            return None
        self._entries.move_to_end(key)
        return entry

    def _store(self, key: str, entry: _Entry) -> None:
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._bytes -= previous.size
        self._entries[key] = entry
        self._bytes += entry.size
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    async def _fill(
        self, key: str, watermark: Hashable | None, scope: Scope, receive: Receive, send: Send
    ) -> _Entry | None:
        """Run the query (once for concurrent misses of a key) and return its
        entry; None when the answer was not cacheable and was sent as it came."""
        leader = self._inflight.get(key) if watermark is not None else None
        if leader is not None:
            entry = await asyncio.shield(leader)
            if entry is not None:
                return entry
        future: asyncio.Future[_Entry | None] = asyncio.get_running_loop().create_future()
        if watermark is not None:
            self._inflight.setdefault(key, future)
        entry = None
        try:
            captured = CapturedResponse()
            await self.app(scope, receive, captured.send)
            entry = _cacheable(captured, watermark)
            if entry is None:
                await _send_captured(captured, send)
                return None
            # Stored only if no publication happened meanwhile: a later request
            # must not get an answer from before a watermark it already sees.
            if watermark is not None and self.watermark() == watermark:
                self._store(key, entry)
            return entry
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
            if not future.done():
                future.set_result(entry)

    async def _answer(
        self, entry: _Entry, if_none_match: bytes | None, send: Send, cache: str
    ) -> None:
        extra = [
            (b"etag", entry.etag),
            (b"cache-control", self.cache_control),
            (b"vary", VARY),
            (CACHE_STATUS_HEADER.encode(), cache.encode()),
        ]
        if if_none_match is not None and _matches(if_none_match, entry.etag):
            metrics.PUBLIC_CACHE.labels("not_modified").inc()
            await send_response(send, 304, extra, b"")
            return
        metrics.PUBLIC_CACHE.labels(cache).inc()
        await send_response(send, entry.status, [*entry.headers, *extra], entry.body)


# --- helpers --------------------------------------------------------------------------

_REPLACED = frozenset({b"cache-control", b"vary", b"content-length", b"etag"})


def _cacheable(captured: CapturedResponse, watermark: Hashable | None) -> _Entry | None:
    if captured.status != 200:
        return None
    headers = tuple((n, v) for n, v in captured.headers if n.lower() not in _REPLACED)
    if not any(n.lower() == b"content-type" and b"json" in v for n, v in headers):
        return None
    try:
        payload = json.loads(captured.body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or payload.get("errors") or "data" not in payload:
        return None
    body = bytes(captured.body)
    etag = f'"{hashlib.sha256(body).hexdigest()[:40]}"'.encode()
    return _Entry(watermark, captured.status, headers, body, etag)


async def _send_captured(captured: CapturedResponse, send: Send) -> None:
    await captured.flush(_marked(send, NO_STORE, cache="bypass"))


def _marked(send: Send, cache_control: bytes, *, cache: str | None = None) -> Send:
    """`send`, with the response's Cache-Control and Vary set."""

    async def send_marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (n, v)
                for n, v in message.get("headers", [])
                if n.lower() not in (b"cache-control", b"vary")
            ]
            headers += [(b"cache-control", cache_control), (b"vary", VARY)]
            if cache is not None:
                headers.append((CACHE_STATUS_HEADER.encode(), cache.encode()))
            message = {**message, "headers": headers}
        await send(message)

    return send_marked


def _from_query_string(raw: bytes) -> dict[str, Any] | None:
    params = parse_qs(raw.decode("latin-1"), keep_blank_values=True)
    if "query" not in params:
        return None  # the IDE, or nothing to cache
    request: dict[str, Any] = {"query": params["query"][0]}
    if "operationName" in params:
        request["operationName"] = params["operationName"][0] or None
    if "variables" in params and params["variables"][0]:
        try:
            request["variables"] = json.loads(params["variables"][0])
        except (ValueError, RecursionError):
            return None
    return request


def _key(request: dict[str, Any]) -> str:
    canonical = json.dumps(
        [request["query"], request.get("operationName"), request.get("variables") or {}],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,  # a lone surrogate must not fail here: the view refuses it
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _matches(if_none_match: bytes, etag: bytes) -> bool:
    """RFC 9110 §13.1.2: weak comparison, `*` matches any current representation."""
    value = if_none_match.strip()
    if value == b"*":
        return True
    opaque = etag.removeprefix(b"W/")
    return any(candidate.strip().removeprefix(b"W/") == opaque for candidate in value.split(b","))
