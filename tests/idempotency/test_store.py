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
from adapters.mongo.idempotency import IDEMPOTENCY, MongoIdempotencyStore, end_id
from domain.idempotency import CallerKey, IdempotencyRecord, StoredResponse
from domain.ports import IdempotencyStore
from tests.store_commands import recording

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


async def _race(
    store: IdempotencyStore,
    claim: IdempotencyRecord,
    taker: IdempotencyRecord,
    *,
    completion_first: bool,
) -> tuple[bool, bool]:
    """(recorded, taken over): `claim` completes while `taker` takes it over."""
    completion = store.complete(claim, RESPONSE, NOW + timedelta(days=1))
    takeover = store.take_over(claim, taker)
    if completion_first:
        completed, taken = await asyncio.gather(completion, takeover)
    else:
        taken, completed = await asyncio.gather(takeover, completion)
    return completed, taken


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
        # a claim that was taken over, its request finishing late
        stranger = new_record(caller_key, at=NOW - timedelta(hours=1))
        await store.claim(stranger)
        mine = new_record(caller_key)
        assert await store.take_over(stranger, mine)
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

    async def test_a_late_completion_and_a_takeover_race_the_first_end_stands(
        self, store: IdempotencyStore
    ) -> None:
        """An abandoned claim's request finishes as another takes it over: the
        first end of the claim decides. Either the response is recorded and
        the takeover loses (the key replays it), or the takeover's mark ends
        the claim and the response is not recorded (the resumed command
        answers from its stored events); never both, never neither."""
        claims = [
            new_record(CallerKey("olga", f"race-{uuid.uuid4().hex}"), at=NOW - timedelta(hours=1))
            for _ in range(12)
        ]
        for claim in claims:
            assert await store.claim(claim) is None
        takers = [new_record(claim.caller_key) for claim in claims]
        # half the completions start first, half the takeovers
        outcomes = await asyncio.gather(
            *(
                _race(store, claim, taker, completion_first=n % 2 == 0)
                for n, (claim, taker) in enumerate(zip(claims, takers, strict=True))
            )
        )
        assert {completed for completed, _ in outcomes} == {True, False}  # both orders ran
        for (completed, taken), claim, taker in zip(outcomes, claims, takers, strict=True):
            assert completed != taken, (completed, taken)
            held = await store.claim(new_record(claim.caller_key))
            assert held is not None
            if completed:
                assert held.claim_id == claim.claim_id and held.response == RESPONSE
            else:
                assert held == taker and held.in_flight


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
        self, store: MongoIdempotencyStore, database: AsyncDatabase[Document]
    ) -> None:
        kept, expired = CallerKey("olga", "key-kept"), CallerKey("olga", "key-expired")
        kept_claim = new_record(kept)  # expires a day after NOW
        expired_claim = replace(new_record(expired), expires_at=NOW - timedelta(seconds=1))
        for claim in (kept_claim, expired_claim):
            await store.claim(claim)
        # the responses are documents of their own: the sweep takes them too
        assert await store.complete(kept_claim, RESPONSE, NOW + timedelta(days=1))
        assert await store.complete(expired_claim, RESPONSE, NOW - timedelta(seconds=1))
        assert await store.sweep_expired(NOW) == 2
        assert await store.get(expired) is None
        assert await database[IDEMPOTENCY].count_documents({}) == 2
        stored = await store.get(kept)
        assert stored is not None and stored.response == RESPONSE
        assert await store.sweep_expired(NOW) == 0

    async def test_a_completion_inserts_its_response_and_leaves_the_claim_as_it_was(
        self, store: MongoIdempotencyStore, database: AsyncDatabase[Document], caller_key: CallerKey
    ) -> None:
        mine = new_record(caller_key)
        await store.claim(mine)
        claimed = await database[IDEMPOTENCY].find_one({"_id": caller_key.scoped})
        with recording() as sent:
            assert await store.complete(mine, RESPONSE, NOW + timedelta(days=2))
        assert [str(command) for command in sent] == ["insert idempotency"]
        assert await database[IDEMPOTENCY].find_one({"_id": caller_key.scoped}) == claimed
        ended = await database[IDEMPOTENCY].find_one({"_id": end_id(caller_key, mine.claim_id)})
        assert ended is not None
        assert (ended["claim"], ended["command"]) == (mine.claim_id, mine.command_id)

    async def test_a_takeover_stopped_after_its_mark_leaves_the_claim_to_the_next(
        self, store: MongoIdempotencyStore, database: AsyncDatabase[Document], caller_key: CallerKey
    ) -> None:
        """A taker that marked the abandoned claim ended and died before its
        update: the claim still reads in flight, its late completion records
        nothing, and the next takeover proceeds past the mark."""
        abandoned = new_record(caller_key, at=NOW - timedelta(hours=1))
        await store.claim(abandoned)
        await database[IDEMPOTENCY].insert_one(
            {
                "_id": end_id(caller_key, abandoned.claim_id),
                "end": "abandoned",
                "claim": abandoned.claim_id,
                "command": abandoned.command_id,
                "expiresAt": abandoned.expires_at,
            }
        )
        held = await store.claim(new_record(caller_key))
        assert held == abandoned and held.in_flight
        assert not await store.complete(abandoned, RESPONSE, NOW + timedelta(days=1))
        successor = replace(new_record(caller_key), command_id=abandoned.command_id)
        assert await store.take_over(held, successor)
        assert await store.claim(new_record(caller_key)) == successor

    @pytest.mark.parametrize("state", ["completed", "released"])
    async def test_a_record_an_older_herald_wrote_reads_as_it_was(
        self,
        store: MongoIdempotencyStore,
        database: AsyncDatabase[Document],
        caller_key: CallerKey,
        state: str,
    ) -> None:
        """Before the ends were documents of their own, a completion or a
        release updated the claim document: such a record still replays (or
        reads released), and can be taken over once expired."""
        old = new_record(caller_key, at=NOW - timedelta(days=3))
        document: Document = {
            "_id": caller_key.scoped,
            "subject": caller_key.subject,
            "key": caller_key.key,
            "state": state,
            "fingerprint": old.fingerprint,
            "claim": old.claim_id,
            "command": old.command_id,
            "claimedAt": old.claimed_at,
            "createdAt": old.claimed_at,
            "expiresAt": NOW - timedelta(days=2),
        }
        if state == "completed":
            document["response"] = {
                "status": RESPONSE.status,
                "headers": [list(header) for header in RESPONSE.headers],
                "body": RESPONSE.body,
            }
            document["completedAt"] = old.claimed_at
        await database[IDEMPOTENCY].insert_one(document)
        held = await store.claim(new_record(caller_key))
        assert held is not None
        expected = replace(old, expires_at=NOW - timedelta(days=2))
        if state == "completed":
            assert held == replace(expected, response=RESPONSE)
        else:
            assert held == replace(expected, released=True)
        # its end is in the claim document: a taker that read it in flight loses
        in_flight = replace(held, response=None, released=False)
        assert not await store.take_over(in_flight, new_record(caller_key))
        fresh = new_record(caller_key, "f2")
        assert await store.take_over(held, fresh)
        assert await store.claim(new_record(caller_key)) == fresh

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
