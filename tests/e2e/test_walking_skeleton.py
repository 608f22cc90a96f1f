"""The whole CQRS loop over HTTP, against each broker: announce -> outbox ->
relay -> Kafka -> card projector -> MongoDB -> GraphQL, with four eyes."""

from __future__ import annotations

from typing import Any

from tests.support import DIVIDEND, GraphQLClient, operation_document

PORTAL = operation_document("portal")
WEBSITE = operation_document("website")


async def announce(client: GraphQLClient, token: str, **changes: Any) -> dict[str, Any]:
    data = await client.data(
        PORTAL,
        {"input": {**DIVIDEND, **changes}},
        token=token,
        operation_name="PortalAnnounce",
    )
    result: dict[str, Any] = data["announceCorporateAction"]
    return result


async def test_announce_approve_and_read_back(client: GraphQLClient) -> None:
    operator = client.token("olga", "ca-operator")
    approver = client.token("ivan", "ca-approver")

    announced = await announce(client, operator)
    action = announced["corporateAction"]
    assert action["version"] == 1
    assert action["status"] == "DRAFT"

    # Not published yet: the public sees nothing, the operator sees the draft.
    portal = await client.data(
        PORTAL,
        {"id": action["id"], "consistencyToken": announced["consistencyToken"]},
        token=operator,
        operation_name="PortalCard",
    )
    assert portal["corporateAction"]["status"] == "DRAFT"
    assert portal["corporateAction"]["pendingVersion"] == 1
    public = await client.data(WEBSITE, {"id": action["id"]}, operation_name="WebsiteCard")
    assert public["corporateAction"] is None

    approved = await client.data(
        PORTAL,
        {"input": {"id": action["id"], "version": 1}},
        token=approver,
        operation_name="PortalApprove",
    )
    assert approved["approvePublication"]["corporateAction"]["status"] == "PUBLISHED"
    assert approved["approvePublication"]["corporateAction"]["publishedAt"]

    portal = await client.data(
        PORTAL,
        {
            "id": action["id"],
            "consistencyToken": approved["approvePublication"]["consistencyToken"],
        },
        token=operator,
        operation_name="PortalCard",
    )
    card = portal["corporateAction"]
    assert card["status"] == "PUBLISHED"
    assert card["version"] == 1 and card["pendingVersion"] is None
    assert card["grossRate"] == {"amount": "33.30", "currency": "RUB"}
    assert [h["eventType"] for h in card["history"]] == [
        "CorporateActionAnnounced",
        "PublicationApproved",
    ]
    assert [h["actor"] for h in card["history"]] == ["olga", "ivan"]

    public = await client.data(WEBSITE, {"id": action["id"]}, operation_name="WebsiteCard")
    assert public["corporateAction"]["reference"] == DIVIDEND["reference"]
    assert public["corporateAction"]["security"] == {
        "isin": "RU0009029540",
        "name": "Sberbank ordinary shares",
    }
    listing = await client.data(
        WEBSITE, {"filter": {"isin": "RU0009029540"}, "first": 10}, operation_name="WebsiteCards"
    )
    assert listing["corporateActions"]["totalCount"] == 1
    assert listing["corporateActions"]["edges"][0]["node"]["id"] == action["id"]


async def test_author_cannot_approve_own_version(client: GraphQLClient) -> None:
    both_roles = client.token("petr", "ca-operator", "ca-approver")
    announced = await announce(client, both_roles, reference="RU-DVCA-2026-4EYES")
    result = await client.execute(
        PORTAL,
        {"input": {"id": announced["corporateAction"]["id"], "version": 1}},
        token=both_roles,
        operation_name="PortalApprove",
    )
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_public_list_hides_drafts_and_pages_with_cursors(client: GraphQLClient) -> None:
    operator = client.token("olga", "ca-operator")
    approver = client.token("ivan", "ca-approver")
    ids = []
    token = ""
    for n in range(3):
        announced = await announce(client, operator, reference=f"RU-PAGE-{n}")
        ids.append(announced["corporateAction"]["id"])
        approved = await client.data(
            PORTAL,
            {"input": {"id": ids[-1], "version": 1}},
            token=approver,
            operation_name="PortalApprove",
        )
        token = approved["approvePublication"]["consistencyToken"]
    draft = await announce(client, operator, reference="RU-PAGE-DRAFT")

    # Wait for the last approval and the draft to be projected (the cards
    # projector may lag the commands on a loaded machine), then page through
    # as the public.
    for action_id, consistency in (
        (ids[-1], token),
        (draft["corporateAction"]["id"], draft["consistencyToken"]),
    ):
        await client.data(
            PORTAL,
            {"id": action_id, "consistencyToken": consistency},
            token=operator,
            operation_name="PortalCard",
        )
    seen: list[str] = []
    after = None
    while True:
        page = await client.data(
            WEBSITE, {"first": 2, "after": after}, operation_name="WebsiteCards"
        )
        connection = page["corporateActions"]
        assert connection["totalCount"] == 3
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == list(reversed(ids))  # newest first, the draft nowhere
    assert draft["corporateAction"]["id"] not in seen

    drafts = await client.data(
        PORTAL,
        {"first": 10, "consistencyToken": None},
        token=operator,
        operation_name="PortalDrafts",
    )
    assert [e["node"]["id"] for e in drafts["corporateActions"]["edges"]] == [
        draft["corporateAction"]["id"]
    ]
