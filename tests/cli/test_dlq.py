"""The dead-letter store (port DeadLetterStore, Mongo adapter) and `herald dlq
replay` over many letters, on the real store."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.auth.dev_issuer import DevIssuer
from cli.dlq import PROGRESS_FROM, replay_letters
from domain.dead_letters import DeadLetter, DeadLetterStatus, delivery_source, letter_id
from tests.support import Broker, RunningHerald, herald_settings

SOURCE = delivery_source("carrier-pigeon")  # a source with no replay (yet)


@pytest.fixture
async def herald_on_tansu(
    tansu_broker: Broker, mongo_uri: str, issuer: DevIssuer
) -> AsyncIterator[RunningHerald]:
    async with RunningHerald(herald_settings(tansu_broker, mongo_uri, issuer), issuer) as running:
        yield running


def letter(n: int, at: datetime) -> DeadLetter:
    return DeadLetter(
        id=letter_id(SOURCE, f"nt-{n}"),
        source=SOURCE,
        kind="Refused",
        reason=f"refused {n}",
        parked_at=at + timedelta(seconds=n),
        event_id=f"nt-{n}",
    )


async def test_parking_again_counts_an_attempt_and_keeps_the_first_time(
    herald_on_tansu: RunningHerald,
) -> None:
    store = herald_on_tansu.services.dead_letters
    at = datetime(2026, 11, 30, tzinfo=UTC)
    await store.park(letter(1, at))
    await store.park(letter(1, at + timedelta(hours=1)))
    [stored] = await store.find("delivery:")
    assert stored.attempts == 2 and stored.parked_at == at + timedelta(seconds=1)
    assert await store.find("projection:") == []
    await store.replayed(stored.id, at, attempts=1)  # parked again since: stays parked
    assert [kept.id for kept in await store.find(SOURCE)] == [stored.id]
    await store.replayed(stored.id, at, attempts=stored.attempts)
    assert await store.find(SOURCE) == []
    [done] = await store.find(SOURCE, status=DeadLetterStatus.REPLAYED)
    assert done.replayed_at == at


async def test_replaying_a_long_list_prints_progress_and_keeps_what_still_fails(
    herald_on_tansu: RunningHerald,
) -> None:
    services = herald_on_tansu.services
    at = datetime(2026, 11, 30, tzinfo=UTC)
    for n in range(PROGRESS_FROM + 5):
        await services.dead_letters.park(letter(n, at))
    out, progress = io.StringIO(), io.StringIO()
    assert await replay_letters(services, SOURCE, out=out, progress=progress) == (
        0,
        PROGRESS_FROM + 5,
    )
    lines = progress.getvalue().splitlines()
    assert lines[-1] == f"replayed 0, failing {PROGRESS_FROM + 5} of {PROGRESS_FROM + 5}"
    assert len(lines) == 3  # every tenth, and the last
    assert "no replay for source 'delivery:carrier-pigeon'" in out.getvalue()
    parked = await services.dead_letters.find(SOURCE)
    assert len(parked) == PROGRESS_FROM + 5 and all(p.attempts == 2 for p in parked)
    assert [p.id for p in parked] == [letter(n, at).id for n in range(PROGRESS_FROM + 5)]
