"""CachedReadiness: /readyz answers at once from checks run in the background.

A readiness probe must answer in milliseconds whatever the state of what it
checks: a store that is down makes its ping wait for the server-selection
timeout (5 s), and a probe that waits that long is itself reported dead.
The checks run every `interval` seconds (0.5 s) — every `not_ready_interval`
(0.2 s) while some check fails, so a process that comes ready (a restart
catching up) says so soon — each round bounded by `timeout`; /readyz reads
the last round's answer.

A check answers True (passes), False (fails) or TIMEOUT (gave no answer in
time: a stalled store, a broker that accepts connections but does not
answer). The round's check fills the answers as they come (`answer`), each
one it waits for standing as TIMEOUT meanwhile, so a round cut short at
`timeout` still names every check that did not answer, beside those that
did. Only True passes: "timeout" is a truthy string, so test answers with
`passed`, never with `all(...)` or `if`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Literal

__all__ = ["TIMEOUT", "CachedReadiness", "Checks", "answer", "passed"]

log = logging.getLogger(__name__)

TIMEOUT: Literal["timeout"] = "timeout"
Answer = bool | Literal["timeout"]
Checks = dict[str, Answer]

# How long one round of checks may take; past it, what did not answer is TIMEOUT.
ROUND_SECONDS = 2.0
# How long one check that waits for a peer may take: its answer and the
# others' fit in the round, so a slow peer is named, the rest still answered.
CHECK_SECONDS = 1.5


def passed(checks: Checks) -> bool:
    """True when every check answered True (TIMEOUT is no pass)."""
    return all(value is True for value in checks.values())


async def answer(
    checks: Checks, name: str, check: Awaitable[bool], *, within: float = CHECK_SECONDS
) -> Answer:
    """Put `check`'s answer in `checks[name]`, and return it: TIMEOUT while
    it is awaited (what a round cut short shows) and when it raises
    TimeoutError or gives no answer within `within` seconds."""
    checks[name] = TIMEOUT
    try:
        async with asyncio.timeout(within):
            checks[name] = await check
    except TimeoutError:
        pass
    return checks[name]


class CachedReadiness:
    """`check(answers)`: one round of checks, filling `answers` as each
    answers (see `answer`) and returning them."""

    def __init__(
        self,
        check: Callable[[Checks], Awaitable[Checks]],
        *,
        interval: float = 0.5,
        not_ready_interval: float = 0.2,
        timeout: float = ROUND_SECONDS,
    ) -> None:
        self._check = check
        self.interval = interval
        self.not_ready_interval = min(not_ready_interval, interval)
        self.timeout = timeout
        self._last: Checks | None = None
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> Checks:
        """Run the checks once (bounded by `timeout`) and keep their answer:
        cut short, what answered and each check still awaited as TIMEOUT
        (none awaited — the round was slow elsewhere: `"checks": TIMEOUT`)."""
        answers: Checks = {}
        try:
            async with asyncio.timeout(self.timeout):  # (wait_for may swallow a cancel)
                self._last = await self._check(answers)
        except TimeoutError:
            named = any(value == TIMEOUT for value in answers.values())
            self._last = dict(answers) if named else answers | {"checks": TIMEOUT}
        except Exception:  # a failing check is a failed check, not a failed probe
            log.exception("readiness checks failed")
            self._last = {"checks": False}
        return self._last

    async def current(self) -> Checks:
        """The last round's answer (the first call runs one round)."""
        if self._last is None:
            return await self.refresh()
        return dict(self._last)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="readiness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            ready = passed(await self.refresh())
            await asyncio.sleep(self.interval if ready else self.not_ready_interval)
