"""/readyz answers from the last round of checks: a check that hangs (a dead
store's ping waits for server selection) never makes the probe wait."""

from __future__ import annotations

import asyncio

import pytest

from observability.readiness import CachedReadiness


async def test_the_probe_reads_the_last_round_without_running_the_checks() -> None:
    calls = 0

    async def check() -> dict[str, bool]:
        nonlocal calls
        calls += 1
        return {"store": True}

    readiness = CachedReadiness(check)
    assert await readiness.current() == {"store": True}
    for _ in range(100):
        assert await readiness.current() == {"store": True}
    assert calls == 1


async def test_a_hanging_check_is_a_failed_round() -> None:
    never = asyncio.Event()

    async def hangs() -> dict[str, bool]:
        await never.wait()
        return {"store": True}

    readiness = CachedReadiness(hangs, interval=0.01, timeout=0.05)
    assert await readiness.current() == {"checks": False}
    readiness.start()
    await asyncio.sleep(0.1)
    await readiness.stop()
    assert await readiness.current() == {"checks": False}


async def test_a_failing_check_is_a_failed_round() -> None:
    async def fails() -> dict[str, bool]:
        raise RuntimeError("boom")

    assert await CachedReadiness(fails).refresh() == {"checks": False}


async def test_while_not_ready_the_checks_run_again_sooner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restarted process catching up says it is ready within
    `not_ready_interval` of being so, not a whole `interval`."""
    answers = iter([{"projector:cards": False}, {"projector:cards": True}])
    waits: list[float] = []

    async def check() -> dict[str, bool]:
        return next(answers)

    async def sleep(seconds: float) -> None:  # the waits between rounds, not slept
        waits.append(seconds)
        if len(waits) == 2:
            raise asyncio.CancelledError

    monkeypatch.setattr(asyncio, "sleep", sleep)
    readiness = CachedReadiness(check, interval=0.5, not_ready_interval=0.2)
    with pytest.raises(asyncio.CancelledError):
        await readiness._run()
    assert waits == [0.2, 0.5]
