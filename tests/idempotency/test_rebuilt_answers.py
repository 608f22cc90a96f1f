"""A command whose request stored its event records no response: the event is
the key's record, and a repeat rebuilds the first answer from it, byte for
byte (web/idempotency/middleware.py). Answers that a rebuild would not
reproduce (live read-model state) or that stored no event (a refusal) are
recorded as before.

Real SecantusDB, real Tansu, real HTTP (httpx over the app's ASGI interface).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from commands.ids import command_event_id
from domain.idempotency import CallerKey
from domain.principal import ROLE_APPROVER, ROLE_OPERATOR, SCOPE_NOTICES_READ
from tests.builders import insert_notices, notice_doc
from tests.support import DIVIDEND, Broker, GraphQLClient, RunningHerald

# Every field of a card the answer can show without live state.
CARD = """id reference eventType mandatoryVoluntary status version pendingVersion
  security { isin name } announcementDate exDate recordDate paymentDate responseDeadline
  grossRate { amount currency } ratio { numerator denominator }
  options { number kind isDefault } publishedAt cancellationReason
  history { version eventType occurredAt actor }"""
ANNOUNCE = (
    "mutation A($input: AnnounceCorporateActionInput!) { announceCorporateAction(input: $input) "
    f"{{ corporateAction {{ {CARD} }} consistencyToken }} }}"
)
APPROVE = (
    "mutation P($input: ApprovePublicationInput!) { approvePublication(input: $input) "
    f"{{ corporateAction {{ {CARD} }} consistencyToken }} }}"
)
APPROVE_WITH_STATS = (
    "mutation P($input: ApprovePublicationInput!) { approvePublication(input: $input) "
    "{ corporateAction { id version noticeStats { total } } consistencyToken } }"
)
ACKNOWLEDGE = (
    "mutation K($id: ID!) { acknowledgeNotice(id: $id) { notice { id accountId kind version "
    "changedFields eligibleQuantity entitlement { gross { amount currency } "
    "tax { amount currency } net { amount currency } securities fraction } issuedAt "
    "acknowledgedAt } consistencyToken } }"
)
POSITIONS = (
    "mutation R($input: RecordPositionsInput!) { recordPositions(input: $input) "
    "{ accepted consistencyToken } }"
)
PREFERENCES = (
    "mutation S($input: NotificationPreferencesInput!) { setNotificationPreferences(input: "
    "$input) { preferences { accountId channels email pushToken bic updatedAt } "
    "consistencyToken } }"
)


@pytest.fixture
def broker(tansu_broker: Broker) -> Broker:
    """Rebuilt answers do not depend on the broker: the shared `herald`
    fixture (tests/conftest.py) on Tansu alone."""
    return tansu_broker


async def _post(
    http: httpx.AsyncClient, token: str, key: str, query: str, variables: dict[str, Any]
) -> httpx.Response:
    return await http.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
    )


async def _twice(
    herald: RunningHerald,
    client: GraphQLClient,
    subject: str,
    token: str,
    query: str,
    variables: dict[str, Any],
) -> tuple[httpx.Response, str]:
    """Send a keyed mutation, then the same again: the first response (checked
    free of errors) and the key, after checking that the repeat replays it
    byte for byte and stored nothing more."""
    key = uuid.uuid4().hex
    first = await _post(client.http, token, key, query, variables)
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    assert not first.json().get("errors"), first.text

    again = await _post(client.http, token, key, query, variables)
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    record = await herald.services.idempotency.get(CallerKey(subject, key))
    assert record is not None  # its command's one event, stored once
    mine = {
        "$or": [{"_id": command_event_id(record.command_id)}, {"command.id": record.command_id}]
    }
    assert await herald.services.db["events"].count_documents(mine) == 1
    return first, key


async def _recorded(herald: RunningHerald, subject: str, key: str) -> bool:
    record = await herald.services.idempotency.get(CallerKey(subject, key))
    assert record is not None
    return record.response is not None


async def test_a_repeat_rebuilds_each_commands_first_answer_from_its_event(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    olga = client.token("olga", ROLE_OPERATOR)
    reference = f"RU-REB-{uuid.uuid4().hex[:8]}"
    terms = {**DIVIDEND, "reference": reference}
    counted = {"command": "announce", "outcome": "replayed"}
    replays = REGISTRY.get_sample_value("herald_commands_total", counted) or 0.0
    announced, key = await _twice(herald, client, "olga", olga, ANNOUNCE, {"input": terms})
    assert not await _recorded(herald, "olga", key)  # the event is the record
    # the repeat is counted as a replay, not as a second accepted command
    assert REGISTRY.get_sample_value("herald_commands_total", counted) == replays + 1
    action = announced.json()["data"]["announceCorporateAction"]["corporateAction"]

    paula = client.token("paula", ROLE_APPROVER)
    approve = {"input": {"id": action["id"], "version": 1}}
    approved, key = await _twice(herald, client, "paula", paula, APPROVE, approve)
    assert not await _recorded(herald, "paula", key)
    shown = approved.json()["data"]["approvePublication"]["corporateAction"]
    assert shown["status"] == "PUBLISHED" and shown["publishedAt"]

    positions = {
        "isin": DIVIDEND["isin"],
        "asOf": "2026-12-15",
        "positions": [{"accountId": "ACC-REB-1", "quantity": "10", "taxRatePercent": "13"}],
    }
    _, key = await _twice(herald, client, "olga", olga, POSITIONS, {"input": positions})
    assert not await _recorded(herald, "olga", key)

    account = f"ACC-REB-{uuid.uuid4().hex[:6]}"
    doc = notice_doc(account, action["id"])
    await insert_notices(herald, [doc])
    dora = client.token("dora", accounts=(account,), scopes=(SCOPE_NOTICES_READ,))
    acknowledged, key = await _twice(herald, client, "dora", dora, ACKNOWLEDGE, {"id": doc["_id"]})
    # the answer shows the read model's notice, which a re-issue replaces: recorded
    assert await _recorded(herald, "dora", key)
    assert acknowledged.json()["data"]["acknowledgeNotice"]["notice"]["acknowledgedAt"]

    preferences = {"accountId": account, "channels": ["EMAIL"], "email": "dora@example.com"}
    _, key = await _twice(herald, client, "dora", dora, PREFERENCES, {"input": preferences})
    assert not await _recorded(herald, "dora", key)


async def test_answers_a_rebuild_would_not_reproduce_are_recorded(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    olga = client.token("olga", ROLE_OPERATOR)
    terms = {**DIVIDEND, "reference": f"RU-REC-{uuid.uuid4().hex[:8]}"}
    announced, _ = await _twice(herald, client, "olga", olga, ANNOUNCE, {"input": terms})
    action = announced.json()["data"]["announceCorporateAction"]["corporateAction"]

    # the notice counts move as the notices go out: that answer is recorded
    paula = client.token("paula", ROLE_APPROVER)
    approve = {"input": {"id": action["id"], "version": 1}}
    approved, key = await _twice(herald, client, "paula", paula, APPROVE_WITH_STATS, approve)
    assert await _recorded(herald, "paula", key)
    assert approved.json()["data"]["approvePublication"]["corporateAction"]["noticeStats"]

    # a refusal stored no event: recorded (the same reference again)
    refused, key = await _post_refused(client, olga, terms)
    assert await _recorded(herald, "olga", key)
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def _post_refused(
    client: GraphQLClient, token: str, terms: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    key = uuid.uuid4().hex
    first = await _post(client.http, token, key, ANNOUNCE, {"input": terms})
    again = await _post(client.http, token, key, ANNOUNCE, {"input": terms})
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    answer: dict[str, Any] = json.loads(first.content)
    return answer, key


async def test_a_rebuild_refused_to_the_caller_is_sent_as_is_and_keeps_the_key(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    """The same subject repeats the request with a token that lost the role:
    the rebuild is refused to it, that refusal is its answer (neither a replay
    nor recorded), and the key still answers the first answer to the role."""
    olga = client.token("olga", ROLE_OPERATOR)
    terms = {**DIVIDEND, "reference": f"RU-ROLE-{uuid.uuid4().hex[:8]}"}
    key = uuid.uuid4().hex
    first = await _post(client.http, olga, key, ANNOUNCE, {"input": terms})
    assert not first.json().get("errors"), first.text

    demoted = client.token("olga")
    refused = await _post(client.http, demoted, key, ANNOUNCE, {"input": terms})
    assert refused.status_code == 200 and "idempotent-replayed" not in refused.headers
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert not await _recorded(herald, "olga", key)

    again = await _post(client.http, olga, key, ANNOUNCE, {"input": terms})
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert (
        await herald.services.db["events"].count_documents(
            {"payload.terms.reference": terms["reference"]}
        )
        == 1
    )
