"""Invariant 4: replaying the whole log from offset 0 into empty collections
rebuilds read models identical to the live ones, document by document; and a
rebuild with switch-over leaves readers on a complete collection."""

from __future__ import annotations

from typing import Any

from cli.rebuild import rebuild
from devstack.herald import RunningHerald
from tests.projections.scenario import Portal, assert_counts_exact, notices_of, settled
from tests.support import GraphQLClient, eventually, operation_document

MOBILE = operation_document("mobile", without_subscriptions=True)


async def documents(herald: RunningHerald, collection: str) -> dict[str, dict[str, Any]]:
    return {doc["_id"]: doc async for doc in herald.services.db[collection].find({})}


def counts_by_action(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Take the count documents out of `docs` and sum them per action: the
    projector's and the marks' documents split the counts differently live
    (the marks move their own) and in a replay (the notices come back with
    their marks), the sums are what readers see."""
    sums: dict[str, dict[str, int]] = {}
    for key in [k for k, doc in docs.items() if "statsOf" in doc]:
        doc = docs.pop(key)
        total = sums.setdefault(doc["statsOf"], {})
        for field, value in doc.items():
            if field not in ("_id", "statsOf"):
                total[field] = total.get(field, 0) + value
    return {action: {f: n for f, n in sums[action].items() if n} for action in sums}


async def test_replay_rebuilds_identical_read_models(
    herald: RunningHerald, client: GraphQLClient
) -> None:
    portal = Portal(client)
    dividend = await portal.publish(reference="RU-REBUILD-1", recordDate="2026-12-21")
    await portal.positions({"A": "100", "B": "3", "C": "0"}, as_of="2026-12-21")
    await portal.amend(dividend, 1, grossRate={"amount": "12.5", "currency": "RUB"})
    split = await portal.publish(
        reference="RU-REBUILD-2",
        eventType="SPLF",
        recordDate="2026-12-21",
        grossRate=None,
        ratio={"numerator": 3, "denominator": 2},
    )
    await portal.positions({"A": "100", "D": "9"}, as_of="2026-12-21")
    await portal.cancel(split, 1)
    await portal.announce(reference="RU-REBUILD-DRAFT")
    await eventually(
        lambda: notices_of(herald, split), lambda n: n.get("D", {}).get("kind") == "CANCELLATION"
    )
    # A depositor acknowledges the dividend's current notice: the replay keeps it.
    notice = (await eventually(lambda: notices_of(herald, dividend), lambda n: "A" in n))["A"]
    depositor = client.token("anna", accounts=("A",), scopes=("notices:read",))
    await client.data(
        MOBILE, {"id": notice["_id"]}, token=depositor, operation_name="MobileAcknowledge"
    )
    await eventually(
        lambda: notices_of(herald, dividend), lambda n: n["A"]["acknowledgedAt"] is not None
    )
    await settled(herald)
    assert (await assert_counts_exact(herald, dividend))["acknowledged"] == 1
    await assert_counts_exact(herald, split)

    # the counts are rebuilt with the notices (they live in the same collection)
    for name, live in (("cards", "cards"), ("notices", "notices")):
        copy = await rebuild(herald.services, name, switch=False, progress=lambda _: None)
        rebuilt, current = await documents(herald, copy), await documents(herald, live)
        assert counts_by_action(rebuilt) == counts_by_action(current)
        assert rebuilt.keys() == current.keys()
        assert len(current) >= 3
        for key, doc in current.items():
            assert rebuilt[key] == doc, f"{name} {key} differs after replay"


async def test_rebuild_switches_readers_over(herald: RunningHerald, client: GraphQLClient) -> None:
    portal = Portal(client)
    action_id = await portal.publish(reference="RU-SWITCH-1")
    await eventually(lambda: documents(herald, "cards"), lambda cards: action_id in cards)
    await herald.services.db["cards"].delete_many({})  # a read model gone bad
    messages: list[str] = []
    await rebuild(herald.services, "cards", progress=messages.append)
    cards = await documents(herald, "cards")
    assert action_id in cards and cards[action_id]["status"] == "PUBLISHED"
    assert any("caught up" in m for m in messages)
    print(messages[-1])  # the rebuild's duration, for the record (pytest -rP shows it)
    assert "cards__rebuild" not in " ".join(await herald.services.db.list_collection_names())
