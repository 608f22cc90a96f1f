"""A small portal script the projection tests share: announce, approve, amend,
cancel and record positions over HTTP, then wait for a read model."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pytest

from devstack.herald import RunningHerald
from domain.ports import NoticePlan
from tests.support import GraphQLClient, eventually, operation_document

PORTAL = operation_document("portal")
T = TypeVar("T")

DIVIDEND: dict[str, Any] = {
    "reference": "RU-NOTICE-1",
    "eventType": "DVCA",
    "mandatoryVoluntary": "MAND",
    "isin": "RU0009029540",
    "announcementDate": "2026-11-20",
    "recordDate": "2026-12-15",
    "paymentDate": "2026-12-29",
    "grossRate": {"amount": "33.30", "currency": "RUB"},
}


class Portal:
    def __init__(self, client: GraphQLClient) -> None:
        self.client = client
        self.operator = client.token("olga", "ca-operator")
        self.approver = client.token("ivan", "ca-approver")

    async def _run(self, operation: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        return await self.client.data(PORTAL, variables, token=token, operation_name=operation)

    async def announce(self, **changes: Any) -> str:
        data = await self._run("PortalAnnounce", {"input": {**DIVIDEND, **changes}}, self.operator)
        return str(data["announceCorporateAction"]["corporateAction"]["id"])

    async def approve(self, action_id: str, version: int) -> None:
        await self._run(
            "PortalApprove", {"input": {"id": action_id, "version": version}}, self.approver
        )

    async def publish(self, **changes: Any) -> str:
        action_id = await self.announce(**changes)
        await self.approve(action_id, 1)
        return action_id

    async def amend(self, action_id: str, expected: int, **changes: Any) -> None:
        variables = {"input": {"id": action_id, "expectedVersion": expected, **changes}}
        await self._run("PortalAmend", variables, self.operator)
        await self.approve(action_id, expected + 1)

    async def cancel(self, action_id: str, expected: int) -> None:
        variables = {"input": {"id": action_id, "expectedVersion": expected, "reason": "withdrawn"}}
        await self._run("PortalCancel", variables, self.operator)
        await self.approve(action_id, expected + 1)

    async def positions(
        self,
        holdings: dict[str, str],
        *,
        tax: str = "13",
        isin: str = "RU0009029540",
        as_of: str = "2026-12-15",
    ) -> None:
        positions = [
            {"accountId": account, "quantity": quantity, "taxRatePercent": tax}
            for account, quantity in holdings.items()
        ]
        await self._run(
            "PortalRecordPositions",
            {"input": {"isin": isin, "asOf": as_of, "positions": positions}},
            self.operator,
        )


async def notices_of(herald: RunningHerald, action_id: str) -> dict[str, dict[str, Any]]:
    cursor = herald.services.db["notices"].find({"corporateActionId": action_id})
    return {doc["accountId"]: doc async for doc in cursor}


async def assert_counts_exact(herald: RunningHerald, action_id: str) -> dict[str, int]:
    """The action's notice counts the projector keeps equal the notices counted
    one by one (call once the projectors settled); returns them."""
    notices = list((await notices_of(herald, action_id)).values())
    counted = {
        "total": len(notices),
        "delivered": sum(n["deliveredAt"] is not None for n in notices),
        "acknowledged": sum(n["acknowledgedAt"] is not None for n in notices),
    }
    kept = (await herald.services.notices.by_action([action_id])).get(action_id, (0, 0, 0))
    assert dict(zip(("total", "delivered", "acknowledged"), kept, strict=True)) == counted
    return counted


async def settled(herald: RunningHerald) -> None:
    """Wait until the outbox is drained and every projector has no lag."""
    await eventually(herald.behind, lambda n: n == 0)


class HeldFanout:
    """The notices projector's chunk writes wait until `release` is set:
    a fan-out stays under way (as a large one does) while a test looks;
    `writing` is set once the first chunk waits."""

    def __init__(self, herald: RunningHerald, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writing, self.release = asyncio.Event(), asyncio.Event()
        store = herald.services.notice_projection
        write = store.reconcile_range

        async def held(action_id: str, first: str, last: str, plan: NoticePlan) -> int:
            self.writing.set()
            await self.release.wait()
            return await write(action_id, first, last, plan)

        monkeypatch.setattr(store, "reconcile_range", held)
