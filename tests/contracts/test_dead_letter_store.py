"""The DeadLetterStore port's contract, run against the in-memory store and
MongoDB: a letter parked again is one letter with one more attempt; letters
are found by source prefix, ids and status in the order they were parked; a
replay is marked only if the letter was not parked again meanwhile."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from adapters.memory.dead_letters import MemoryDeadLetterStore
from adapters.mongo.client import Document
from adapters.mongo.dead_letters import MongoDeadLetterStore
from domain.dead_letters import (
    SOURCE_OUTBOX,
    DeadLetter,
    DeadLetterStatus,
    letter_id,
    projection_source,
)
from domain.ports import DeadLetterStore

T0 = datetime(2026, 11, 30, 8, tzinfo=UTC)
CARDS = projection_source("cards")


@pytest.fixture(params=["memory", "mongo"])
async def letters(
    request: pytest.FixtureRequest, mongo_db: AsyncDatabase[Document]
) -> AsyncIterator[DeadLetterStore]:
    if request.param == "memory":
        yield MemoryDeadLetterStore()
        return
    mongo = MongoDeadLetterStore(mongo_db)
    await mongo.ensure_indexes()
    yield mongo


def _letter(source: str, offset: int, *, minutes: int = 0, reason: str = "bad") -> DeadLetter:
    return DeadLetter(
        id=letter_id(source, "t", 0, offset),
        source=source,
        kind="ValueError",
        reason=reason,
        parked_at=T0 + timedelta(minutes=minutes),
        topic="t",
        partition=0,
        offset=offset,
        payload="{}",
    )


async def test_a_letter_parked_again_is_one_letter_with_one_more_attempt(
    letters: DeadLetterStore,
) -> None:
    first = _letter(CARDS, 1)
    await letters.park(first)
    await letters.park(_letter(CARDS, 1, minutes=5, reason="still bad"))
    [letter] = await letters.find(CARDS)
    assert (letter.id, letter.attempts, letter.reason) == (first.id, 2, "still bad")
    assert letter.parked_at == T0  # when it was first parked
    await letters.failed_again(first.id, "bad again", T0 + timedelta(minutes=9))
    [letter] = await letters.find(ids=[first.id])
    assert (letter.attempts, letter.reason, letter.status) == (
        3,
        "bad again",
        DeadLetterStatus.PARKED,
    )


async def test_letters_are_found_by_source_ids_and_status_in_parking_order(
    letters: DeadLetterStore,
) -> None:
    late, early = _letter(CARDS, 1, minutes=2), _letter(CARDS, 2, minutes=1)
    outbox = _letter(SOURCE_OUTBOX, 3)
    for letter in (late, early, outbox):
        await letters.park(letter)
    assert [x.id for x in await letters.find("projection:")] == [early.id, late.id]
    assert [x.id for x in await letters.find()] == [outbox.id, early.id, late.id]
    assert [x.id for x in await letters.find(ids=[late.id, outbox.id])] == [outbox.id, late.id]
    await letters.replayed(late.id, T0, attempts=1)
    assert [x.id for x in await letters.find(CARDS)] == [early.id]
    [replayed] = await letters.find(CARDS, status=DeadLetterStatus.REPLAYED)
    assert (replayed.id, replayed.replayed_at) == (late.id, T0)
    assert len(await letters.find(status=None)) == 3


async def test_a_replay_is_not_marked_when_the_letter_was_parked_again_meanwhile(
    letters: DeadLetterStore,
) -> None:
    letter = _letter(SOURCE_OUTBOX, 1)
    await letters.park(letter)
    await letters.park(letter)  # the relay refused it again while the replay ran
    await letters.replayed(letter.id, T0, attempts=1)
    [still] = await letters.find(ids=[letter.id])
    assert (still.status, still.attempts) == (DeadLetterStatus.PARKED, 2)
    await letters.replayed(letter.id, T0, attempts=2)
    assert await letters.find(ids=[letter.id]) == []  # replayed now
    await letters.park(letter)  # parked once more: back with its count
    [again] = await letters.find(ids=[letter.id])
    assert (again.attempts, again.replayed_at) == (3, None)
