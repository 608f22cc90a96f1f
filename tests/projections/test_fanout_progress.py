"""`projections` tells the truth during a notice fan-out: while the
approval's notices are being written its `lag` may read 0 (the event is
consumed, not yet applied), so the view also names the accounts the fan-out
has still to process — across processes, through the projection state."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.herald import RunningHerald
from tests.projections.scenario import HeldFanout, Portal, notices_of
from tests.support import GraphQLClient, eventually

PROJECTIONS = "{ projections { name lag fanoutAccountsRemaining } }"
HOLDERS = {"ACC-1": "100", "ACC-2": "5", "ACC-3": "7"}


async def test_the_projections_view_names_the_fanout_left_until_the_notices_are_written(
    herald: RunningHerald, monkeypatch: pytest.MonkeyPatch
) -> None:
    fanout = HeldFanout(herald, monkeypatch)
    async with GraphQLClient.of(herald) as client:
        portal = Portal(client)
        await portal.positions(HOLDERS)
        action_id = await portal.publish(reference="RU-FANOUT-VIEW")
        await fanout.writing.wait()

        async def notices_view() -> dict[str, Any]:
            data = await client.data(PROJECTIONS, token=portal.operator)
            views = {view["name"]: view for view in data["projections"]}
            return views["notices"]  # type: ignore[no-any-return]

        during = await notices_view()
        assert during["fanoutAccountsRemaining"] == str(len(HOLDERS))
        assert await notices_of(herald, action_id) == {}  # … and indeed none is visible
        fanout.release.set()
        await eventually(notices_view, lambda v: v["fanoutAccountsRemaining"] == "0")
        # 0 is said once every notice is written, not before
        assert sorted(await notices_of(herald, action_id)) == sorted(HOLDERS)
