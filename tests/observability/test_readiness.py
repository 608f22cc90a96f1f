"""/readyz answers from the last round of checks: a check that hangs (a dead
store's ping waits for server selection) never makes the probe wait, and is
named "timeout" in the answer."""

from __future__ import annotations

import asyncio

import pytest

from adapters.kafka.topics import kafka_ping
from observability.readiness import TIMEOUT, CachedReadiness, Checks, answer, passed


async def test_the_probe_reads_the_last_round_without_running_the_checks() -> None:
    calls = 0

    async def check(answers: Checks) -> Checks:
        nonlocal calls
        calls += 1
        return {"store": True}

    readiness = CachedReadiness(check)
    assert await readiness.current() == {"store": True}
    for _ in range(100):
        assert await readiness.current() == {"store": True}
    assert calls == 1


async def test_a_round_cut_short_names_each_check_that_did_not_answer() -> None:
    """Past the round's bound: the answers that came stay, and each check
    still awaited is "timeout" — not one anonymous `"checks": false`."""
    never = asyncio.Event()

    async def hangs(answers: Checks) -> Checks:
        await answer(answers, "kafka", asyncio.sleep(0, True))
        await asyncio.gather(
            answer(answers, "store", never.wait(), within=60),
            answer(answers, "relay", never.wait(), within=60),
        )
        answers["projector:cards"] = True
        return answers

    readiness = CachedReadiness(hangs, interval=0.01, timeout=0.05)
    expected: Checks = {"kafka": True, "store": TIMEOUT, "relay": TIMEOUT}
    assert await readiness.current() == expected
    readiness.start()
    await asyncio.sleep(0.1)
    await readiness.stop()
    assert await readiness.current() == expected
    assert not passed(expected)


async def test_a_round_slow_past_its_checks_is_named_as_a_whole() -> None:
    async def slow(answers: Checks) -> Checks:
        answers["store"] = True
        await asyncio.Event().wait()  # slow elsewhere than in a check
        return answers

    checks = await CachedReadiness(slow, timeout=0.05).refresh()
    assert checks == {"store": True, "checks": TIMEOUT}
    assert not passed(checks)


async def test_a_check_without_an_answer_in_its_time_is_timeout_and_the_round_goes_on() -> None:
    async def stalls() -> bool:
        await asyncio.Event().wait()
        return True

    answers: Checks = {}
    assert await answer(answers, "store", stalls(), within=0.05) == TIMEOUT
    assert await answer(answers, "kafka", asyncio.sleep(0, False)) is False
    assert answers == {"store": TIMEOUT, "kafka": False}


async def test_a_broker_that_accepts_connections_but_never_answers_is_named_timeout() -> None:
    """A listener that reads and never replies (a hung broker): the ping's own
    timeout (3 s) is past the round's, so the check's bound names it."""
    silent: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        answers: Checks = {}
        assert await answer(answers, "kafka", kafka_ping(f"127.0.0.1:{port}"), within=0.5) == (
            TIMEOUT
        )
        assert silent, "the ping never reached the listener"
    finally:
        for writer in silent:
            writer.close()
        server.close()
        await server.wait_closed()


def test_only_true_passes() -> None:
    assert passed({"store": True, "kafka": True})
    assert not passed({"store": True, "kafka": TIMEOUT})  # a truthy string, no pass
    assert not passed({"store": False})


async def test_a_failing_check_is_a_failed_round() -> None:
    async def fails(answers: Checks) -> Checks:
        raise RuntimeError("boom")

    assert await CachedReadiness(fails).refresh() == {"checks": False}


async def test_while_not_ready_the_checks_run_again_sooner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A restarted process catching up says it is ready within
    `not_ready_interval` of being so, not a whole `interval`."""
    rounds: list[Checks] = [{"projector:cards": False}, {"projector:cards": True}]
    waits: list[float] = []

    async def check(answers: Checks) -> Checks:
        return rounds.pop(0)

    async def sleep(seconds: float) -> None:  # the waits between rounds, not slept
        waits.append(seconds)
        if len(waits) == 2:
            raise asyncio.CancelledError

    monkeypatch.setattr(asyncio, "sleep", sleep)
    readiness = CachedReadiness(check, interval=0.5, not_ready_interval=0.2)
    with pytest.raises(asyncio.CancelledError):
        await readiness._run()
    assert waits == [0.2, 0.5]
