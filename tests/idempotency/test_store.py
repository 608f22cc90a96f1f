"""The IdempotencyStore port's contract, run against MongoIdempotencyStore on a
real SecantusDB and against MemoryIdempotencyStore. Another adapter subclasses
`IdempotencyStoreContract` and provides its own `store` fixture."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.memory.idempotency import MemoryIdempotencyStore
from adapters.mongo.client import Document, connect
from adapters.mongo.idempotency import IDEMPOTENCY, MongoIdempotencyStore
from domain.idempotency import CallerKey, IdempotencyRecord, StoredResponse
from domain.ports import IdempotencyStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RESPONSE = StoredResponse(
    200, (("content-type", "application/json"),), b'{"data":{"ok":true}}\x00\xff'
)


def new_record(
    caller_key: CallerKey, fingerprint: str = "f1", at: datetime = NOW
) -> IdempotencyRecord:
    return IdempotencyRecord(
        caller_key=caller_key,
        fingerprint=fingerprint,
        claim_id=uuid.uuid4().hex,
        claimed_at=at,
        expires_at=at + timedelta(days=1),
    )


@pytest.fixture
def caller_key() -> CallerKey:
    return CallerKey("olga", f"key-{uuid.uuid4().hex}")


class IdempotencyStoreContract:
    async def test_first_claim_wins_and_a_repeat_sees_it(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        first = new_record(caller_key)
        assert await store.claim(first) is None
        held = await store.claim(new_record(caller_key, "f2"))
        assert held == first
        assert held is not None and held.in_flight

    async def test_keys_are_scoped_to_the_caller(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        assert await store.claim(new_record(caller_key)) is None
        other = replace(caller_key, subject="oleg")
        anonymous = replace(caller_key, subject=None)
        named_anonymous = replace(caller_key, subject="null")
        for key in (other, anonymous, named_anonymous):
            assert await store.claim(new_record(key)) is None

    async def test_concurrent_claims_have_one_winner(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        results = await asyncio.gather(*(store.claim(new_record(caller_key)) for _ in range(20)))
        winners = [r for r in results if r is None]
        assert len(winners) == 1
        holders = {r.claim_id for r in results if r is not None}
        assert len(holders) == 1

    async def test_complete_records_the_response_of_our_claim_only(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        mine = new_record(caller_key)
        await store.claim(mine)
        stranger = replace(mine, claim_id="someone-else")
        assert not await store.complete(stranger, RESPONSE, NOW + timedelta(days=2))
        assert await store.complete(mine, RESPONSE, NOW + timedelta(days=2))
        assert not await store.complete(mine, RESPONSE, NOW + timedelta(days=3))
        held = await store.claim(new_record(caller_key))
        assert held is not None
        assert held.response == RESPONSE
        assert held.expires_at == NOW + timedelta(days=2)
        assert held.fingerprint == mine.fingerprint and held.claim_id == mine.claim_id

    async def test_release_frees_our_in_flight_claim_only_and_keeps_its_command(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        mine = new_record(caller_key)
        await store.claim(mine)
        await store.release(replace(mine, claim_id="someone-else"))
        assert await store.claim(new_record(caller_key)) == mine
        await store.release(mine)
        released = await store.claim(new_record(caller_key))
        assert released == replace(mine, released=True)
        assert not released.in_flight and released.command_id == mine.command_id
        # the retry takes the released claim over, resuming the same command
        again = replace(new_record(caller_key), command_id=mine.command_id)
        assert await store.take_over(released, again)
        assert await store.claim(new_record(caller_key)) == again
        # a completed record is never released
        await store.complete(again, RESPONSE, NOW + timedelta(days=1))
        await store.release(again)
        held = await store.claim(new_record(caller_key))
        assert held is not None and held.response == RESPONSE

    async def test_a_resent_claim_or_takeover_is_ours(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        """The driver resends a write whose answer it lost: the second send
        finds our own claim and must not read it as someone else's."""
        mine = new_record(caller_key)
        assert await store.claim(mine) is None
        assert await store.claim(mine) is None
        successor = new_record(caller_key)
        assert await store.take_over(mine, successor)
        assert await store.take_over(mine, successor)
        assert not await store.take_over(mine, new_record(caller_key))
        assert await store.claim(new_record(caller_key)) == successor

    async def test_take_over_acts_only_on_the_claim_it_read(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        stale = new_record(caller_key, at=NOW - timedelta(hours=1))
        await store.claim(stale)
        contenders = [new_record(caller_key) for _ in range(10)]
        taken = await asyncio.gather(*(store.take_over(stale, c) for c in contenders))
        assert taken.count(True) == 1
        winner = contenders[taken.index(True)]
        assert await store.claim(new_record(caller_key)) == winner
        # the old claimant finishing late records nothing over the new claim
        assert not await store.complete(stale, RESPONSE, NOW + timedelta(days=1))
        await store.release(stale)
        assert await store.claim(new_record(caller_key)) == winner

    async def test_take_over_loses_to_a_completion(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        first = new_record(caller_key)
        await store.claim(first)
        held = await store.claim(new_record(caller_key))
        assert held is not None and held.in_flight
        await store.complete(first, RESPONSE, NOW + timedelta(days=1))
        assert not await store.take_over(held, new_record(caller_key))
        completed = await store.claim(new_record(caller_key))
        assert completed is not None and completed.response == RESPONSE

    async def test_an_expired_completed_record_can_be_taken_over(
        self, store: IdempotencyStore, caller_key: CallerKey
    ) -> None:
        old = new_record(caller_key, at=NOW - timedelta(days=3))
        await store.claim(old)
        await store.complete(old, RESPONSE, NOW - timedelta(days=2))
        held = await store.claim(new_record(caller_key))
        assert held is not None
        fresh = new_record(caller_key, "f2")
        assert await store.take_over(held, fresh)
        assert await store.claim(new_record(caller_key)) == fresh


class TestMongoIdempotencyStore(IdempotencyStoreContract):
    @pytest.fixture
    async def database(self, mongo_uri: str) -> AsyncIterator[AsyncDatabase[Document]]:
        client = connect(mongo_uri)
        name = f"idem_{uuid.uuid4().hex[:10]}"
        yield client[name]
        await client.drop_database(name)
        await client.close()

    @pytest.fixture
    async def store(self, database: AsyncDatabase[Document]) -> MongoIdempotencyStore:
        store = MongoIdempotencyStore(database)
        await store.ensure_indexes()
        return store

    async def test_the_sweep_deletes_expired_keys_and_keeps_the_rest(
        self, store: MongoIdempotencyStore
    ) -> None:
        kept, expired = CallerKey("olga", "key-kept"), CallerKey("olga", "key-expired")
        await store.claim(new_record(kept))  # expires a day after NOW
        await store.claim(replace(new_record(expired), expires_at=NOW - timedelta(seconds=1)))
        assert await store.sweep_expired(NOW) == 1
        assert await store.get(expired) is None
        assert await store.get(kept) is not None
        assert await store.sweep_expired(NOW) == 0

    async def test_expiry_is_the_sweep_not_a_ttl_index(
        self, database: AsyncDatabase[Document]
    ) -> None:
        # a store an older Herald indexed: its TTL index goes, the sweep's stays
        await database[IDEMPOTENCY].create_index("expiresAt", expireAfterSeconds=0)
        await MongoIdempotencyStore(database).ensure_indexes()
        indexes = [index async for index in await database[IDEMPOTENCY].list_indexes()]
        on_expiry = [i for i in indexes if dict(i["key"]) == {"expiresAt": 1}]
        assert len(on_expiry) == 1
        assert "expireAfterSeconds" not in on_expiry[0]


class TestMemoryIdempotencyStore(IdempotencyStoreContract):
    @pytest.fixture
    def store(self) -> MemoryIdempotencyStore:
        return MemoryIdempotencyStore()
