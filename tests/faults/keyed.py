"""A client that behaves as the contract asks of one: every mutation under its
own Idempotency-Key, and every request that was not answered (connection
lost, 409 in progress, 503, a server failure) sent again with the same key
until it is. It keeps every answer it heard, per key, for the checks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from adapters.mongo.client import Document
from domain.identifiers import isin_check_digit
from domain.positions import positions_aggregate_id
from tests.support import DIVIDEND

# GraphQL error codes that mean "not answered": the key is free to run again.
NOT_ANSWERED = frozenset({"SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR"})

ANNOUNCE = (
    "mutation A($input: AnnounceCorporateActionInput!) { announceCorporateAction(input: $input) "
    "{ corporateAction { id version status } consistencyToken } }"
)
AMEND = (
    "mutation M($input: AmendCorporateActionInput!) { amendCorporateAction(input: $input) "
    "{ corporateAction { id version status } consistencyToken } }"
)
APPROVE = (
    "mutation P($input: ApprovePublicationInput!) { approvePublication(input: $input) "
    "{ corporateAction { id version status publishedAt } consistencyToken } }"
)
ACKNOWLEDGE = (
    "mutation K($id: ID!) { acknowledgeNotice(id: $id) "
    "{ notice { id version acknowledgedAt } consistencyToken } }"
)
POSITIONS = (
    "mutation R($input: RecordPositionsInput!) { recordPositions(input: $input) "
    "{ accepted consistencyToken } }"
)


def isin(n: int) -> str:
    """A valid ISIN, distinct per `n`."""
    body = f"RU{n:09d}"
    return body + isin_check_digit(body)


def announce_body(reference: str) -> dict[str, Any]:
    return {"query": ANNOUNCE, "variables": {"input": {**DIVIDEND, "reference": reference}}}


def amend_body(action_id: str, reference: str) -> dict[str, Any]:
    """Version 2: a new reference (a reservation moves) and a new rate."""
    changes = {"reference": reference, "grossRate": {"amount": "34.1", "currency": "RUB"}}
    return {
        "query": AMEND,
        "variables": {"input": {"id": action_id, "expectedVersion": 1, **changes}},
    }


def approve_body(action_id: str, version: int = 1) -> dict[str, Any]:
    return {"query": APPROVE, "variables": {"input": {"id": action_id, "version": version}}}


def acknowledge_body(notice_id: str) -> dict[str, Any]:
    return {"query": ACKNOWLEDGE, "variables": {"id": notice_id}}


def positions_body(security: str, accounts: int, as_of: str = "2026-12-15") -> dict[str, Any]:
    positions = [
        {"accountId": f"ACC-{n:05d}", "quantity": str(n + 1), "taxRatePercent": "13"}
        for n in range(accounts)
    ]
    return {
        "query": POSITIONS,
        "variables": {"input": {"isin": security, "asOf": as_of, "positions": positions}},
    }


def positions_stream(body: Mapping[str, Any]) -> str:
    given = body["variables"]["input"]
    return positions_aggregate_id(given["isin"], given["asOf"])


@dataclass
class Sent:
    """One keyed request and every answer it heard (a replay is an answer too)."""

    key: str
    token: str
    subject: str
    body: dict[str, Any]
    answers: list[bytes] = field(default_factory=list)
    attempts: int = 0
    # when the first answer came (the event loop's clock)
    answered_at: float | None = None

    @property
    def scoped_key(self) -> str:
        return json.dumps([self.subject, self.key], separators=(",", ":"))

    @property
    def answer(self) -> dict[str, Any]:
        assert self.answers, f"{self.key} was never answered"
        result: dict[str, Any] = json.loads(self.answers[0])
        return result

    def data(self, field_name: str) -> dict[str, Any]:
        answer = self.answer
        assert not answer.get("errors"), (self.key, answer)
        result: dict[str, Any] = answer["data"][field_name]
        return result


def keyed(subject: str, token: str, body: dict[str, Any]) -> Sent:
    return Sent(key=uuid.uuid4().hex, token=token, subject=subject, body=body)


async def until_answered(
    http: httpx.AsyncClient, sent: Sent, *, timeout: float = 120.0, pause: float = 0.2
) -> Sent:
    """POST `sent` until it is answered; the answer is kept in `sent.answers`."""
    deadline = asyncio.get_running_loop().time() + timeout
    headers = {"Authorization": f"Bearer {sent.token}", "Idempotency-Key": sent.key}
    while True:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{sent.key} not answered in {timeout}s ({sent.attempts} tries)")
        sent.attempts += 1
        try:
            response = await http.post("/graphql", json=sent.body, headers=headers)
        except httpx.TransportError:
            await asyncio.sleep(pause)
            continue
        if response.status_code in (409, 503) or response.status_code >= 500:
            await asyncio.sleep(pause)
            continue
        assert response.status_code == 200, response.text
        payload = response.json()
        codes = {e.get("extensions", {}).get("code") for e in payload.get("errors") or []}
        if codes & NOT_ANSWERED:
            await asyncio.sleep(pause)
            continue
        sent.answers.append(response.content)
        if sent.answered_at is None:
            sent.answered_at = asyncio.get_running_loop().time()
        return sent


async def events_by_key(
    events: Any, keys: Sequence[str] | None = None
) -> dict[str, list[Document]]:
    """Every stored event that a keyed request recorded (of `keys`, the
    caller-scoped keys, when given), by caller-scoped key."""
    found: dict[str, list[Document]] = {}
    query = {"command": {"$exists": True}} if keys is None else {"command.key": {"$in": keys}}
    async for doc in events.find(query):
        found.setdefault(doc["command"]["key"], []).append(doc)
    return found
