"""`projections` tells the truth during a notice fan-out: while the
approval's notices are being written its `lag` may read 0 (the event is
consumed, not yet applied), so the view also names the accounts the fan-out
has still to process — across processes, through the projection state."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from devstack.herald import RunningHerald
from domain.ports import NoticePlan
from tests.projections.scenario import Portal, notices_of
from tests.support import GraphQLClient, eventually

PROJECTIONS = "{ projections { name lag fanoutAccountsRemaining } }"
HOLDERS = {"ACC-1": "100", "ACC-2": "5", "ACC-3": "7"}


async def test_the_projections_view_names_the_fanout_left_until_the_notices_are_written(
    herald: RunningHerald, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fan-out's chunk writes wait for the test: the fan-out is under way.
    store = herald.services.notice_projection
    writing, release = asyncio.Event(), asyncio.Event()
    write = store.reconcile_range

    async def held(action_id: str, first: str, last: str, plan: NoticePlan) -> int:
        writing.set()
        await release.wait()
        return await write(action_id, first, last, plan)

    monkeypatch.setattr(store, "reconcile_range", held)
    async with GraphQLClient.of(herald) as client:
        portal = Portal(client)
        await portal.positions(HOLDERS)
        action_id = await portal.publish(reference="RU-FANOUT-VIEW")
        await writing.wait()

        async def notices_view() -> dict[str, Any]:
            data = await client.data(PROJECTIONS, token=portal.operator)
            views = {view["name"]: view for view in data["projections"]}
            return views["notices"]  # type: ignore[no-any-return]

        during = await notices_view()
        assert during["fanoutAccountsRemaining"] == str(len(HOLDERS))
        assert await notices_of(herald, action_id) == {}  # … and indeed none is visible
        release.set()
        await eventually(notices_view, lambda v: v["fanoutAccountsRemaining"] == "0")
        # 0 is said once every notice is written, not before
        assert sorted(await notices_of(herald, action_id)) == sorted(HOLDERS)
