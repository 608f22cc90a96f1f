"""Notification preferences over real HTTP with real tokens: the contract's
MobileSetPreferences / MobilePreferences / PortalSetPreferences, validation
with field paths (nothing changes), who may set what, and read-your-writes
through the outbox → Kafka → preferences projection."""

from __future__ import annotations

from typing import Any

import pytest

from tests.delivery.support import MOBILE, PORTAL, depositor, fresh, operator
from tests.support import GraphQLClient


async def set_preferences(
    api: GraphQLClient, token: str, document: str, operation: str, **input: Any
) -> dict[str, Any]:
    return await api.execute(document, {"input": input}, token=token, operation_name=operation)


async def read(api: GraphQLClient, token: str, account: str, consistency: str | None) -> Any:
    data = await api.data(
        MOBILE,
        {"accountId": account, "consistencyToken": consistency},
        token=token,
        operation_name="MobilePreferences",
    )
    return data["notificationPreferences"]


async def test_a_depositor_sets_and_reads_back_their_preferences(api: GraphQLClient) -> None:
    account = fresh("acc")
    token = depositor(api, account)
    result = await set_preferences(
        api,
        token,
        MOBILE,
        "MobileSetPreferences",
        accountId=account,
        channels=["EMAIL", "PUSH"],
        email="Ivan.Petrov@Example.COM",
        pushToken="device-1",
    )
    assert not result.get("errors"), result
    payload = result["data"]["setNotificationPreferences"]
    assert payload["preferences"]["channels"] == ["EMAIL", "PUSH"]
    assert payload["preferences"]["email"] == "Ivan.Petrov@example.com"  # domain normalised
    shown = await read(api, token, account, payload["consistencyToken"])
    assert shown == payload["preferences"]
    # A second change replaces the first, and the token of the second waits for it.
    again = await set_preferences(
        api, token, MOBILE, "MobileSetPreferences", accountId=account, channels=[]
    )
    shown = await read(
        api, token, account, again["data"]["setNotificationPreferences"]["consistencyToken"]
    )
    assert shown["channels"] == [] and shown["email"] is None


@pytest.mark.parametrize(
    ("input", "field"),
    [
        ({"channels": ["EMAIL"]}, "input.email"),
        ({"channels": ["EMAIL"], "email": "not-an-address"}, "input.email"),
        ({"channels": ["PUSH"]}, "input.pushToken"),
        ({"channels": ["SWIFT"]}, "input.bic"),  # and only an operator may give one
        ({"channels": ["EMAIL", "EMAIL"], "email": "a@example.com"}, "input.channels.1"),
    ],
)
async def test_a_channel_without_its_address_is_refused_with_the_field_and_nothing_changes(
    api: GraphQLClient, input: dict[str, Any], field: str
) -> None:
    account = fresh("acc")
    token = depositor(api, account)
    result = await set_preferences(
        api, token, MOBILE, "MobileSetPreferences", accountId=account, **input
    )
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field
    assert await read(api, token, account, None) is None


async def test_a_depositor_cannot_touch_another_account_nor_set_a_bic(api: GraphQLClient) -> None:
    mine, theirs = fresh("acc"), fresh("acc")
    token = depositor(api, mine)
    other = await set_preferences(
        api, token, MOBILE, "MobileSetPreferences", accountId=theirs, channels=[]
    )
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bic = await set_preferences(
        api,
        token,
        PORTAL,
        "PortalSetPreferences",
        accountId=mine,
        channels=["SWIFT"],
        bic="DEUTDEFF",
    )
    assert bic["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await read(api, token, theirs, None) is None  # not theirs to read either
    assert await read(api, token, mine, None) is None


async def test_an_operator_sets_a_bic_for_any_account_and_a_bad_bic_is_refused(
    api: GraphQLClient,
) -> None:
    account = fresh("inst")
    token = operator(api)
    bad = await set_preferences(
        api, token, PORTAL, "PortalSetPreferences", accountId=account, channels=["SWIFT"], bic="X1"
    )
    assert bad["errors"][0]["extensions"]["field"] == "input.bic"
    good = await set_preferences(
        api,
        token,
        PORTAL,
        "PortalSetPreferences",
        accountId=account,
        channels=["SWIFT"],
        bic="deutdeffxxx",
    )
    assert not good.get("errors"), good
    payload = good["data"]["setNotificationPreferences"]
    assert payload["preferences"]["bic"] == "DEUTDEFFXXX"
    shown = await read(api, depositor(api, account), account, payload["consistencyToken"])
    assert shown["channels"] == ["SWIFT"]


async def test_a_depositor_keeps_operator_set_swift_routing(api: GraphQLClient) -> None:
    """SWIFT routing is the depository's: a depositor may change e-mail and push
    on an institutional account (listing SWIFT without its BIC, which stays),
    but a change that would drop SWIFT is refused and changes nothing."""
    account = fresh("inst")
    routed = await set_preferences(
        api,
        operator(api),
        PORTAL,
        "PortalSetPreferences",
        accountId=account,
        channels=["SWIFT"],
        bic="DEUTDEFF",
    )
    assert not routed.get("errors"), routed
    token = depositor(api, account)
    dropped = await set_preferences(
        api,
        token,
        MOBILE,
        "MobileSetPreferences",
        accountId=account,
        channels=["EMAIL"],
        email="desk@example.com",
    )
    assert dropped["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "SWIFT" in dropped["errors"][0]["message"]
    kept = await set_preferences(
        api,
        token,
        MOBILE,
        "MobileSetPreferences",
        accountId=account,
        channels=["EMAIL", "SWIFT"],
        email="desk@example.com",
    )
    assert not kept.get("errors"), kept
    token_after = kept["data"]["setNotificationPreferences"]["consistencyToken"]
    shown = await read(api, operator(api), account, token_after)
    assert shown["channels"] == ["EMAIL", "SWIFT"]
    assert shown["email"] == "desk@example.com"
    by_operator = await set_preferences(  # the depository itself may drop SWIFT
        api, operator(api), PORTAL, "PortalSetPreferences", accountId=account, channels=[]
    )
    assert not by_operator.get("errors"), by_operator
