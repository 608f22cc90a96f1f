"""The command side end to end: every portal mutation, validation that names
every bad field, unique references, and optimistic concurrency under a storm."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.e2e.test_walking_skeleton import announce
from tests.support import DIVIDEND, GraphQLClient, operation_document

PORTAL = operation_document("portal")
WEBSITE = operation_document("website")


async def approve(
    client: GraphQLClient, token: str, action_id: str, version: int
) -> dict[str, Any]:
    data = await client.data(
        PORTAL,
        {"input": {"id": action_id, "version": version}},
        token=token,
        operation_name="PortalApprove",
    )
    result: dict[str, Any] = data["approvePublication"]
    return result


async def test_amend_cancel_and_approve_every_version(client: GraphQLClient) -> None:
    operator = client.token("olga", "ca-operator")
    approver = client.token("ivan", "ca-approver")
    action_id = (await announce(client, operator, reference="RU-LIFE-1"))["corporateAction"]["id"]
    await approve(client, approver, action_id, 1)

    amended = await client.data(
        PORTAL,
        {
            "input": {
                "id": action_id,
                "expectedVersion": 1,
                "grossRate": {"amount": "35", "currency": "RUB"},
            }
        },
        token=operator,
        operation_name="PortalAmend",
    )
    # `version` is the published one: v2 awaits approval (contract, "Versions").
    assert amended["amendCorporateAction"]["corporateAction"]["version"] == 1

    # Until approved, the public still sees version 1 with the old rate.
    token = (await approve(client, approver, action_id, 2))["consistencyToken"]
    card = await client.data(
        PORTAL,
        {"id": action_id, "consistencyToken": token},
        token=operator,
        operation_name="PortalCard",
    )
    assert card["corporateAction"]["grossRate"]["amount"] == "35.00"
    assert card["corporateAction"]["version"] == 2

    cancelled = await client.data(
        PORTAL,
        {
            "input": {
                "id": action_id,
                "expectedVersion": 2,
                "reason": "issuer withdrew the dividend",
            }
        },
        token=operator,
        operation_name="PortalCancel",
    )
    assert cancelled["cancelCorporateAction"]["corporateAction"]["version"] == 2
    assert cancelled["cancelCorporateAction"]["corporateAction"]["status"] == "PUBLISHED"
    token = (await approve(client, approver, action_id, 3))["consistencyToken"]
    card = await client.data(
        PORTAL,
        {"id": action_id, "consistencyToken": token},
        token=operator,
        operation_name="PortalCard",
    )
    assert card["corporateAction"]["status"] == "CANCELLED"
    assert [h["version"] for h in card["corporateAction"]["history"]] == [1, 1, 2, 2, 3, 3]


async def test_validation_reports_every_problem_and_stores_nothing(client: GraphQLClient) -> None:
    operator = client.token("olga", "ca-operator")
    bad = {
        **DIVIDEND,
        "reference": "RU-BAD-1",
        "isin": "RU0009029541",  # wrong check digit
        "grossRate": {"amount": "1.23456789012", "currency": "RUB"},  # a rate has at most 10
        "exDate": "2026-12-20",  # after the record date
    }
    result = await client.execute(
        PORTAL, {"input": bad}, token=operator, operation_name="PortalAnnounce"
    )
    error = result["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    paths = {".".join(map(str, p["path"])) for p in error["extensions"]["problems"]}
    assert {"input.isin", "input.grossRate.amount"} <= paths
    assert any(p.startswith("input.exDate") or p.startswith("input.recordDate") for p in paths)
    drafts = await client.data(
        PORTAL, {"first": 100}, token=operator, operation_name="PortalDrafts"
    )
    assert drafts["corporateActions"]["totalCount"] == 0


async def test_reference_is_unique(client: GraphQLClient) -> None:
    operator = client.token("olga", "ca-operator")
    await announce(client, operator, reference="RU-UNIQUE-1")
    again = await client.execute(
        PORTAL,
        {"input": {**DIVIDEND, "reference": "RU-UNIQUE-1"}},
        token=operator,
        operation_name="PortalAnnounce",
    )
    assert again["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert again["errors"][0]["extensions"]["field"] == "input.reference"


async def test_concurrent_amends_exactly_one_wins(client: GraphQLClient) -> None:
    operator = client.token("olga", "ca-operator")
    action_id = (await announce(client, operator, reference="RU-RACE-1"))["corporateAction"]["id"]

    async def amend(n: int) -> dict[str, Any]:
        return await client.execute(
            PORTAL,
            {"input": {"id": action_id, "expectedVersion": 1, "securityName": f"name {n}"}},
            token=operator,
            operation_name="PortalAmend",
        )

    results = await asyncio.gather(*(amend(n) for n in range(30)))
    winners = [r for r in results if not r.get("errors")]
    codes = [r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")]
    assert len(winners) == 1
    assert codes == ["CONFLICT"] * 29
    assert winners[0]["data"]["amendCorporateAction"]["corporateAction"]["version"] == 2
    # The stale version changes nothing afterwards either.
    late = await amend(99)
    assert late["errors"][0]["extensions"]["code"] == "CONFLICT"


async def test_record_positions(client: GraphQLClient) -> None:
    operator = client.token("olga", "ca-operator")
    data = await client.data(
        PORTAL,
        {
            "input": {
                "isin": "RU0009029540",
                "asOf": "2026-12-15",
                "positions": [
                    {"accountId": "ACC-1", "quantity": "100", "taxRatePercent": "13"},
                    {"accountId": "ACC-2", "quantity": "0", "taxRatePercent": "15"},
                ],
            }
        },
        token=operator,
        operation_name="PortalRecordPositions",
    )
    assert data["recordPositions"]["accepted"] == 2
    assert data["recordPositions"]["consistencyToken"]
