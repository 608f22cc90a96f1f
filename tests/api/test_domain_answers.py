"""What the API answers about the domain (issue 11): versions in mutation
answers (kind 8), whole numbers past GraphQL's Int (kind 4), rates per
security (kind 10) and a corrected snapshot that changes nothing (kind 7)."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from typing import Any

from domain.identifiers import isin_check_digit
from tests.api.helpers import depositor, fresh, live_for, socket
from tests.projections.scenario import PORTAL, Portal, notices_of, settled
from tests.support import GraphQLClient, RunningHerald, eventually, operation_document

MOBILE = operation_document("mobile")

CARD_FIELDS = (
    "id status version pendingVersion grossRate { amount currency } ratio { numerator denominator }"
)
ANNOUNCE = f"""
mutation($input: AnnounceCorporateActionInput!) {{
  announceCorporateAction(input: $input) {{ corporateAction {{ {CARD_FIELDS} }} consistencyToken }}
}}"""
AMEND = f"""
mutation($input: AmendCorporateActionInput!) {{
  amendCorporateAction(input: $input) {{ corporateAction {{ {CARD_FIELDS} }} consistencyToken }}
}}"""
CANCEL = f"""
mutation($input: CancelCorporateActionInput!) {{
  cancelCorporateAction(input: $input) {{ corporateAction {{ {CARD_FIELDS} }} consistencyToken }}
}}"""
APPROVE = f"""
mutation($input: ApprovePublicationInput!) {{
  approvePublication(input: $input) {{ corporateAction {{ {CARD_FIELDS} }} consistencyToken }}
}}"""
CARD = f"""
query($id: ID!, $token: String) {{
  corporateAction(id: $id, consistencyToken: $token) {{ {CARD_FIELDS} }}
}}"""


def unique_record_date() -> str:
    """The suites share one database: each test gets its own record date."""
    return (date(2030, 1, 1) + timedelta(days=random.randrange(20_000))).isoformat()


def dividend(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "reference": f"RU-{uuid.uuid4().hex[:10]}",
        "eventType": "DVCA",
        "mandatoryVoluntary": "MAND",
        "isin": "RU0009029540",
        "announcementDate": "2026-11-20",
        "recordDate": unique_record_date(),
        "grossRate": {"amount": "33.30", "currency": "RUB"},
    }
    payload.update(changes)
    return payload


class Desk:
    """An operator and an approver, reading each answer back as a query."""

    def __init__(self, api: GraphQLClient) -> None:
        self.api = api
        self.operator = api.token("olga", "ca-operator")
        self.approver = api.token("ivan", "ca-approver")

    async def run(self, document: str, input: dict[str, Any], token: str) -> dict[str, Any]:
        data = await self.api.data(document, {"input": input}, token=token)
        (answer,) = data.values()
        card: dict[str, Any] = answer["corporateAction"]
        # The same card read back at once, as an operator, after this command.
        read = await self.api.data(
            CARD, {"id": card["id"], "token": answer["consistencyToken"]}, token=self.operator
        )
        assert read["corporateAction"] == card, "the answer contradicts the query"
        return card


def versions(card: dict[str, Any]) -> tuple[str, int, int | None]:
    return card["status"], card["version"], card["pendingVersion"]


async def test_mutation_answers_show_the_published_and_the_pending_version(
    api: GraphQLClient,
) -> None:
    desk = Desk(api)
    card = await desk.run(ANNOUNCE, dividend(), desk.operator)
    action_id = card["id"]
    assert versions(card) == ("DRAFT", 1, 1)
    card = await desk.run(APPROVE, {"id": action_id, "version": 1}, desk.approver)
    assert versions(card) == ("PUBLISHED", 1, None)

    amended = {
        "id": action_id,
        "expectedVersion": 1,
        "grossRate": {"amount": "40", "currency": "RUB"},
    }
    card = await desk.run(AMEND, amended, desk.operator)
    # v2 awaits approval: the card still is v1, with v1's rate.
    assert versions(card) == ("PUBLISHED", 1, 2)
    assert card["grossRate"] == {"amount": "33.30", "currency": "RUB"}
    card = await desk.run(APPROVE, {"id": action_id, "version": 2}, desk.approver)
    assert versions(card) == ("PUBLISHED", 2, None)
    assert card["grossRate"] == {"amount": "40.00", "currency": "RUB"}

    cancel = {"id": action_id, "expectedVersion": 2, "reason": "withdrawn by the issuer"}
    card = await desk.run(CANCEL, cancel, desk.operator)
    assert versions(card) == ("PUBLISHED", 2, 3)
    card = await desk.run(APPROVE, {"id": action_id, "version": 3}, desk.approver)
    assert versions(card) == ("CANCELLED", 3, None)


async def test_a_rate_per_security_is_kept_exact(api: GraphQLClient) -> None:
    desk = Desk(api)
    fine = dividend(grossRate={"amount": "0.00110609", "currency": "RUB"})
    card = await desk.run(ANNOUNCE, fine, desk.operator)
    assert card["grossRate"] == {"amount": "0.00110609", "currency": "RUB"}
    spelled = dividend(grossRate={"amount": "1.2300", "currency": "USD"})
    card = await desk.run(ANNOUNCE, spelled, desk.operator)
    assert card["grossRate"] == {"amount": "1.23", "currency": "USD"}


async def test_a_split_of_a_huge_holding_gives_the_exact_number_of_securities(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    portal = Portal(api)
    account = fresh("OMNIBUS")
    record_date = unique_record_date()
    reader = depositor(api, account)
    async with socket(herald, {"token": reader}) as feed:
        await feed.subscribe(MOBILE, operation_name="MobileNoticeFeed")
        await live_for(herald, account)
        await portal.publish(
            reference=f"RU-{uuid.uuid4().hex[:10]}",
            eventType="SPLF",
            recordDate=record_date,
            paymentDate=None,
            grossRate=None,
            ratio={"numerator": 2, "denominator": 1},
        )
        await portal.positions({account: "1500000000"}, as_of=record_date)
        pushed = (await feed.next_data(timeout=60))["noticeIssued"]
    assert pushed["entitlement"]["securities"] == "3000000000"
    assert pushed["eligibleQuantity"] == "1500000000"

    mine = await api.data(MOBILE, token=reader, operation_name="MobileMyNotices")
    (edge,) = mine["myNotices"]["edges"]
    assert edge["node"]["entitlement"] == {
        "gross": None,
        "tax": None,
        "net": None,
        "securities": "3000000000",
    }
    one = await api.data(MOBILE, {"id": pushed["id"]}, token=reader, operation_name="MobileNotice")
    assert one["notice"]["entitlement"]["securities"] == "3000000000"


async def test_a_holding_of_40_digits_is_refused_at_record_positions(api: GraphQLClient) -> None:
    positions = [{"accountId": "ACC-1", "quantity": "9" * 40, "taxRatePercent": "13"}]
    result = await api.execute(
        PORTAL,
        {"input": {"isin": "RU0009029540", "asOf": "2026-12-15", "positions": positions}},
        token=api.token("olga", "ca-operator"),
        operation_name="PortalRecordPositions",
    )
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "input.positions.0.quantity"
    assert error["path"] == ["recordPositions"]
    assert result["data"] is None


async def test_a_corrected_snapshot_meaning_the_same_issues_nothing(
    herald: RunningHerald, api: GraphQLClient
) -> None:
    portal = Portal(api)
    record_date = unique_record_date()
    account = fresh("ACC")
    action_id = await portal.publish(
        reference=f"RU-{uuid.uuid4().hex[:10]}", recordDate=record_date, paymentDate=None
    )
    await portal.positions({account: "40"}, as_of=record_date)
    await eventually(lambda: notices_of(herald, action_id), lambda n: account in n)
    await portal.positions({account: "40.000"}, as_of=record_date, tax="13.0")
    await settled(herald)
    notice = (await notices_of(herald, action_id))[account]
    assert (notice["kind"], notice["version"], notice["changedFields"]) == ("NEW", 1, [])
    assert notice["content"]["eligibleQuantity"] == "40"


async def test_an_isin_spelled_in_lower_case_is_the_same_security(api: GraphQLClient) -> None:
    desk = Desk(api)
    body = "RU" + uuid.uuid4().hex[:9].upper()
    isin = body + isin_check_digit(body)
    card = await desk.run(ANNOUNCE, dividend(isin=f" {isin.lower()}"), desk.operator)
    published = await api.data(
        APPROVE, {"input": {"id": card["id"], "version": 1}}, token=desk.approver
    )
    token = published["approvePublication"]["consistencyToken"]
    search = """query($isin: String!, $token: String) {
      corporateActions(filter: {isin: $isin}, consistencyToken: $token) {
        edges { node { id security { isin } } }
      }
    }"""
    for spelled in (isin, isin.lower()):
        found = await api.data(search, {"isin": spelled, "token": token})
        nodes = [edge["node"] for edge in found["corporateActions"]["edges"]]
        assert nodes == [{"id": card["id"], "security": {"isin": isin}}]
