"""Mutations over the GraphQL WebSocket are refused: graphql-transport-ws
would run them with no Idempotency-Key; mutations go by POST."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Message, Receive, Send

from web.idempotency.requests import is_mutation_request, json_or_none

__all__ = ["without_mutations"]


def without_mutations(receive: Receive, send: Send) -> Receive:
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
        frame = json_or_none(text.encode())
    except RecursionError:
        return None
    if not isinstance(frame, dict) or frame.get("type") not in ("subscribe", "start"):
        return None
    if not is_mutation_request(frame.get("payload")):
        return None
    return frame.get("id", "")
