"""ASGI plumbing shared by the middleware: buffer a request body, hand it on,
capture a response, answer one.

A middleware that must read the body before the app (the Idempotency-Key
check, the public cache) buffers it with `buffer_body`, passes the app a
`replaying` receive, and, when it must see the answer before the caller
does, hands the app a `CapturedResponse.send`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.types import Message, Receive, Scope, Send

__all__ = [
    "BodyEnd",
    "BufferedBody",
    "CapturedResponse",
    "buffer_body",
    "declared_too_large",
    "replaying",
    "send_response",
]

Headers = list[tuple[bytes, bytes]]


class BodyEnd(enum.Enum):
    """How reading a request body ended."""

    COMPLETE = "complete"
    TOO_LARGE = "too large"  # stopped past the limit: `body` is what was read
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class BufferedBody:
    body: bytes
    end: BodyEnd


def declared_too_large(scope: Scope, max_bytes: int) -> bool:
    """True when the request's Content-Length announces more than `max_bytes`."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
            return True
    return False


async def buffer_body(receive: Receive, max_bytes: int) -> BufferedBody:
    """Read the request body, stopping once it is longer than `max_bytes`."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return BufferedBody(bytes(body), BodyEnd.DISCONNECTED)
        body += message.get("body", b"")
        if len(body) > max_bytes:
            return BufferedBody(bytes(body), BodyEnd.TOO_LARGE)
        if not message.get("more_body", False):
            return BufferedBody(bytes(body), BodyEnd.COMPLETE)


def replaying(body: bytes, receive: Receive, *, disconnected: bool = False) -> Receive:
    """A `receive` that hands the buffered body (or the disconnect) to the inner
    app, then waits on the real one (for `http.disconnect`)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            if disconnected:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@dataclass
class CapturedResponse:
    """The inner app's response messages, held back until the middleware has
    looked at them (`flush` sends them on as they came). `status` stays 500
    when the app never started a response."""

    messages: list[Message] = field(default_factory=list)
    status: int = 500
    headers: Headers = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    complete: bool = False

    async def send(self, message: Message) -> None:
        self.messages.append(message)
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            self.complete = not message.get("more_body", False)

    async def flush(self, send: Send) -> None:
        for message in self.messages:
            await send(message)


async def send_response(
    send: Send, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes
) -> None:
    """Answer a whole response; Content-Length is added here (a 304 has none)."""
    all_headers = list(headers)
    if status != 304:
        all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})
