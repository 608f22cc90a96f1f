"""What the API suites share: a graphql-transport-ws client, read-model
documents as the projectors write them, and waiting for the feeds."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from adapters.mongo.cards import MongoCardStore
from commands.ids import new_action_id
from domain import corporate_action as ca
from domain.validation import parse_terms, terms_to_payload
from tests.builders import T0, envelope, insert_notices, notice_doc
from tests.support import DIVIDEND, GraphQLClient, RunningHerald

T = TypeVar("T")

PROTOCOL = Subprotocol("graphql-transport-ws")
SCOPE = "notices:read"


class ProtocolClosed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class Socket:
    """A graphql-transport-ws client: connection_init, subscribe, next."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def subscribe(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        operation_name: str | None = None,
    ) -> str:
        operation_id = str(next(self._ids))
        payload: dict[str, Any] = {"query": query, "variables": dict(variables or {})}
        if operation_name:
            payload["operationName"] = operation_name
        await self.ws.send(
            json.dumps({"id": operation_id, "type": "subscribe", "payload": payload})
        )
        return operation_id

    async def receive(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message (pings answered); ProtocolClosed if the server closed."""
        while True:
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout)
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                raise ProtocolClosed(
                    rcvd.code if rcvd else None, rcvd.reason if rcvd else ""
                ) from exc
            message: dict[str, Any] = json.loads(raw)
            if message["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
                continue
            return message

    async def next_data(self, timeout: float = 10.0) -> dict[str, Any]:
        message = await self.receive(timeout)
        assert message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def silent_for(self, seconds: float) -> None:
        """Assert that nothing arrives for `seconds`."""
        try:
            message = await self.receive(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message: {message}")


async def open_socket(
    herald: RunningHerald, payload: Mapping[str, Any] | None = None
) -> ClientConnection:
    url = herald.base_url.replace("http://", "ws://") + "/graphql"
    ws = await connect(url, subprotocols=[PROTOCOL], open_timeout=10)
    await ws.send(json.dumps({"type": "connection_init", "payload": dict(payload or {})}))
    return ws


@asynccontextmanager
async def socket(
    herald: RunningHerald, payload: Mapping[str, Any] | None = None
) -> AsyncIterator[Socket]:
    """An acknowledged graphql-transport-ws connection."""
    ws = await open_socket(herald, payload)
    try:
        client = Socket(ws)
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        yield client
    finally:
        await ws.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def depositor(api: GraphQLClient, *accounts: str) -> str:
    return api.token(f"depositor-{uuid.uuid4().hex[:6]}", accounts=accounts, scopes=(SCOPE,))


def fresh(prefix: str) -> str:
    """Account ids unique to one test: the suites share the package's database."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


__all__ = ["T0", "insert_notices", "notice_doc"]


def announced(**changes: Any) -> ca.CorporateAction:
    """A draft corporate action, folded by the code the card projector uses."""
    action_id = new_action_id()
    terms = terms_to_payload(parse_terms({**DIVIDEND, **changes}))
    return ca.apply(None, envelope(action_id, 1, ca.announce(terms), "olga"))


def approved(state: ca.CorporateAction, version: int) -> ca.CorporateAction:
    decided = ca.approve(state, state.id, version, "ivan")
    return ca.apply(state, envelope(state.id, state.revision + 1, decided, "ivan"))


async def save_card(herald: RunningHerald, state: ca.CorporateAction, previous: int) -> None:
    """Store a card as the card projector does (through the services' card store)."""
    assert await MongoCardStore(herald.services.db).save(state, previous)


async def eventually(
    probe: Callable[[], T], check: Callable[[T], bool] = bool, timeout: float = 10.0
) -> T:
    """`probe()` once `check` holds of it (read models and feeds are eventual)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = probe()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.02)


async def live_for(herald: RunningHerald, *accounts: str) -> None:
    """Wait until the notices feed delivers the notices of these accounts."""
    await eventually(lambda: herald.services.issued_notices.is_live_for(accounts))
