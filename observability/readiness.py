"""CachedReadiness: /readyz answers at once from checks run in the background.

A readiness probe must answer in milliseconds whatever the state of what it
checks: a store that is down makes its ping wait for the server-selection
timeout (5 s), and a probe that waits that long is itself reported dead.
The checks run every `interval` seconds (0.5 s) — every `not_ready_interval`
(0.2 s) while some check fails, so a process that comes ready (a restart
catching up) says so soon — each round bounded by `timeout` (past it every
check counts as failed, named `checks`); /readyz reads the last round's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["CachedReadiness"]

log = logging.getLogger(__name__)

Checks = dict[str, bool]

# How long one round of checks may take; past it, every check counts as failed.
ROUND_SECONDS = 2.0


class CachedReadiness:
    def __init__(
        self,
        check: Callable[[], Awaitable[Checks]],
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
        """Run the checks once (bounded by `timeout`) and keep their answer."""
        try:
            async with asyncio.timeout(self.timeout):  # (wait_for may swallow a cancel)
                self._last = await self._check()
        except TimeoutError:
            self._last = {"checks": False}
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
            ready = all((await self.refresh()).values())
            await asyncio.sleep(self.interval if ready else self.not_ready_interval)
