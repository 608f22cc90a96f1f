"""AuthenticationMiddleware: bearer JWT -> Principal, as plain ASGI middleware.

No token means the public view. A token that is present but bad (expired,
not yet valid, wrong issuer or audience, badly signed) is refused with HTTP
401 and a `WWW-Authenticate` header, before any resolver runs.
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.auth.verifier import InvalidToken, TokenVerifier, bearer_token
from domain.principal import ANONYMOUS, Principal
from web.asgi import send_response

log = logging.getLogger(__name__)

STATE_PRINCIPAL = "principal"


def principal_from_scope(scope: Scope) -> Principal:
    principal: Principal = scope.get("state", {}).get(STATE_PRINCIPAL, ANONYMOUS)
    return principal


class AuthenticationMiddleware:
    def __init__(self, app: ASGIApp, verifier: TokenVerifier | None) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        principal = ANONYMOUS
        try:
            token = bearer_token(header)
            if token is not None:
                if self.verifier is None:
                    raise InvalidToken("this server has no token issuer configured")
                principal = await self.verifier.verify(token)
        except InvalidToken as exc:
            if scope["type"] == "http":
                await _unauthorized(send, exc.reason)
            else:  # refuse the WebSocket handshake
                await send({"type": "websocket.close", "code": 4401})
            return
        scope.setdefault("state", {})[STATE_PRINCIPAL] = principal
        await self.app(scope, receive, send)


async def _unauthorized(send: Send, reason: str) -> None:
    body = json.dumps(
        {
            "errors": [
                {
                    "message": f"invalid bearer token: {reason}",
                    "extensions": {"code": "UNAUTHENTICATED"},
                }
            ]
        }
    ).encode()
    challenge = f'Bearer error="invalid_token", error_description="{_quote(reason)}"'
    headers = [
        (b"content-type", b"application/json"),
        (b"www-authenticate", challenge.encode("latin-1", "replace")),
    ]
    await send_response(send, 401, headers, body)


def _quote(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]
