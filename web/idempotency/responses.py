"""The responses the Idempotency-Key check records and replays: what of a
captured response is kept, whether it is a server failure (never recorded),
and how a recorded one is sent again."""

from __future__ import annotations

import json

from starlette.types import Send

from domain.idempotency import StoredResponse
from queries.errors import SERVICE_UNAVAILABLE
from queries.extensions import INTERNAL
from web.asgi import CapturedResponse, send_response

__all__ = ["REPLAYED_HEADER", "is_server_failure", "send_replay", "to_stored"]

REPLAYED_HEADER = (b"idempotent-replayed", b"true")
# Response headers that belong to the answer itself and are replayed with it.
# Per-request headers (correlation id, length, date, server) are not.
RECORDED_HEADERS = frozenset({"content-type", "content-language"})
# GraphQL error codes that mean "the server failed", whatever the HTTP status.
SERVER_FAILURE_CODES = frozenset({INTERNAL, SERVICE_UNAVAILABLE})


def to_stored(captured: CapturedResponse) -> StoredResponse:
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


async def send_replay(send: Send, response: StoredResponse) -> None:
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers
    ]
    await send_response(send, response.status, [*headers, REPLAYED_HEADER], response.body)
