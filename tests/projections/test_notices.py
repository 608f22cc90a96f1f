"""Notices end to end: every holder at the record date gets one, in either
order of approval and positions; updates only when what a depositor sees
changes; cancellations reach everyone who had a notice."""

from __future__ import annotations

from typing import Any

from devstack.herald import RunningHerald
from tests.projections.scenario import Portal, assert_counts_exact, notices_of, settled
from tests.support import GraphQLClient, eventually


def by_kind(notices: dict[str, dict[str, Any]]) -> dict[str, tuple[str, int]]:
    return {account: (doc["kind"], doc["version"]) for account, doc in notices.items()}


async def test_positions_after_approval_issue_new_notices(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    portal = Portal(client)
    action_id = await portal.publish(reference="RU-LATE-POS")
    await portal.positions({"ACC-1": "100", "ACC-2": "0", "ACC-3": "7"}, tax="13")

    notices = await eventually(lambda: notices_of(herald, action_id), lambda n: len(n) == 2)
    assert by_kind(notices) == {"ACC-1": ("NEW", 1), "ACC-3": ("NEW", 1)}
    first = notices["ACC-1"]
    # 100 × 33.30 = 3330.00; tax 13 % = 432.90; net 2897.10 (half-up to kopecks)
    assert first["content"]["entitlement"]["gross"] == {"amount": "3330.00", "currency": "RUB"}
    assert first["content"]["entitlement"]["tax"] == {"amount": "432.90", "currency": "RUB"}
    assert first["content"]["entitlement"]["net"] == {"amount": "2897.10", "currency": "RUB"}
    assert first["content"]["eligibleQuantity"] == "100"
    assert first["caVersion"] == 1 and first["changedFields"] == []


async def test_positions_before_approval_issue_the_same(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    portal = Portal(client)
    await portal.positions({"ACC-9": "10"}, as_of="2026-12-16")
    action_id = await portal.publish(reference="RU-EARLY-POS", recordDate="2026-12-16")
    notices = await eventually(lambda: notices_of(herald, action_id), lambda n: len(n) == 1)
    assert by_kind(notices) == {"ACC-9": ("NEW", 1)}
    assert notices["ACC-9"]["content"]["entitlement"]["net"]["amount"] == "289.71"


async def test_updates_only_when_the_depositor_sees_a_change(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    portal = Portal(client)
    action_id = await portal.publish(reference="RU-UPDATES", recordDate="2026-12-17")
    await portal.positions({"A": "100", "B": "50"}, as_of="2026-12-17")
    await eventually(lambda: notices_of(herald, action_id), lambda n: len(n) == 2)

    # The announcement date is not on a depositor's notice: nothing is re-issued.
    await portal.amend(action_id, 1, announcementDate="2026-11-21")
    # A new gross rate changes every entitlement: an UPDATE naming the field.
    await portal.amend(action_id, 2, grossRate={"amount": "40", "currency": "RUB"})
    updated = {"A": ("UPDATE", 2), "B": ("UPDATE", 2)}
    notices = await eventually(
        lambda: notices_of(herald, action_id), lambda n: by_kind(n) == updated
    )
    assert notices["A"]["changedFields"] == ["entitlement"]
    assert notices["A"]["caVersion"] == 3
    await settled(herald)
    assert (await assert_counts_exact(herald, action_id))["total"] == 2

    # A corrected snapshot: A's holding changes, B no longer holds, C appears.
    await portal.positions({"A": "120", "C": "5"}, as_of="2026-12-17")
    corrected = {"A": ("UPDATE", 3), "B": ("CANCELLATION", 3), "C": ("NEW", 1)}
    notices = await eventually(
        lambda: notices_of(herald, action_id), lambda n: by_kind(n) == corrected
    )
    assert notices["A"]["changedFields"] == ["eligibleQuantity", "entitlement"]
    await settled(herald)
    assert (await assert_counts_exact(herald, action_id))["total"] == 3

    # Cancelling the action reaches everyone who holds a live notice.
    await portal.cancel(action_id, 3)
    cancelled = {"A": ("CANCELLATION", 4), "B": ("CANCELLATION", 3), "C": ("CANCELLATION", 2)}
    await eventually(lambda: notices_of(herald, action_id), lambda n: by_kind(n) == cancelled)
    await settled(herald)
    assert (await assert_counts_exact(herald, action_id))["total"] == 3


async def test_security_event_gives_whole_securities_and_the_fraction(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    portal = Portal(client)
    action_id = await portal.publish(
        reference="RU-SPLIT",
        eventType="SPLF",
        recordDate="2026-12-18",
        grossRate=None,
        ratio={"numerator": 3, "denominator": 2},
    )
    await portal.positions({"S": "105"}, as_of="2026-12-18")
    notices = await eventually(lambda: notices_of(herald, action_id), lambda n: len(n) == 1)
    entitlement = notices["S"]["content"]["entitlement"]
    assert entitlement["securities"] == "157" and entitlement["fraction"] == "0.5"
    assert entitlement["gross"] is None and entitlement["net"] is None
