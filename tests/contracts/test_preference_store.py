"""The PreferenceStore port's contract, run against the in-memory store and
MongoDB: versions only move forward, and the preferences in force at a
point of the log (a global sequence) are the latest set at or before it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory.preferences import MemoryPreferenceStore
from adapters.mongo.client import connect
from adapters.mongo.preferences import MongoPreferenceStore
from domain.ports import PreferenceStore
from domain.preferences import DeliveryChannel, Preferences

T0 = datetime(2026, 12, 16, 9, tzinfo=UTC)
EMAIL, PUSH = DeliveryChannel.EMAIL, DeliveryChannel.PUSH


@pytest.fixture(params=["memory", "mongo"])
async def store(request: pytest.FixtureRequest, mongo_uri: str) -> AsyncIterator[PreferenceStore]:
    if request.param == "memory":
        yield MemoryPreferenceStore()
        return
    client = connect(mongo_uri)
    name = f"herald_contract_{uuid.uuid4().hex[:10]}"
    yield MongoPreferenceStore(client[name])
    await client.drop_database(name)
    await client.close()


def _email(account: str, address: str) -> Preferences:
    return Preferences(account, (EMAIL,), email=address)


async def test_versions_only_move_forward(store: PreferenceStore) -> None:
    assert await store.get("ACC-1") is None
    assert await store.save(_email("ACC-1", "a@example.com"), 1, 10, T0)
    assert await store.save(_email("ACC-1", "b@example.com"), 2, 20, T0 + timedelta(1))
    assert not await store.save(_email("ACC-1", "stale@example.com"), 1, 10, T0)  # redelivered
    assert not await store.save(_email("ACC-1", "b@example.com"), 2, 20, T0)
    stored = await store.get("ACC-1")
    assert stored is not None
    assert (stored.preferences.email, stored.version, stored.updated_at) == (
        "b@example.com",
        2,
        T0 + timedelta(1),
    )
    assert await store.current({"ACC-1", "ACC-2"}) == {"ACC-1": _email("ACC-1", "b@example.com")}
    assert await store.current(set()) == {}


async def test_the_preferences_in_force_at_a_point_of_the_log(store: PreferenceStore) -> None:
    await store.save(_email("ACC-1", "a@example.com"), 1, 10, T0)
    await store.save(Preferences("ACC-1", (PUSH,), push_token="tok"), 2, 20, T0)
    await store.save(Preferences("ACC-2", ()), 1, 15, T0)
    found = await store.in_force(
        {("ACC-1", 9), ("ACC-1", 10), ("ACC-1", 19), ("ACC-1", 25), ("ACC-1", 0), ("ACC-2", 30)}
    )
    assert found == {
        ("ACC-1", 10): _email("ACC-1", "a@example.com"),
        ("ACC-1", 19): _email("ACC-1", "a@example.com"),
        ("ACC-1", 25): Preferences("ACC-1", (PUSH,), push_token="tok"),
        ("ACC-1", 0): Preferences("ACC-1", (PUSH,), push_token="tok"),  # 0: the current ones
        ("ACC-2", 30): Preferences("ACC-2", ()),
    }  # none set by sequence 9: absent
    assert await store.in_force({("ACC-3", 5)}) == {}
