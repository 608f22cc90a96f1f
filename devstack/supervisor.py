"""Supervision of the embedded default's children (`herald dev`).

A SecantusDB or Tansu child that dies is started again on the same port (and
the same data folder), with a backoff between attempts: 0.5 s, then doubling
up to 15 s, reset once a child has stayed up for a minute. Each death is one
WARNING line naming the child, its exit code and the wait; each return one
INFO line. After a restart, `on_restart` runs (for the broker: create the
topics again and queue the whole record for the relay to re-publish, since
Tansu keeps its log in memory).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from devstack.process import ManagedProcess

__all__ = ["Child", "Restartable", "Supervisor", "backoff_seconds"]

log = logging.getLogger("herald.dev")

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 15.0
# A child that stayed up this long is healthy again: its next death waits the least.
STABLE_SECONDS = 60.0


def backoff_seconds(failures: int) -> float:
    """The wait before restart attempt `failures` (1, 2, …): 0.5 s doubling, at most 15 s."""
    return float(min(FIRST_BACKOFF_SECONDS * 2 ** max(failures - 1, 0), MAX_BACKOFF_SECONDS))


class Restartable(Protocol):
    """A devstack service: SecantusServer, TansuBroker, ApacheKafkaBroker."""

    @property
    def is_running(self) -> bool: ...

    async def start_async(self) -> None: ...

    def kill(self) -> None: ...


@dataclass
class Child:
    """One supervised service and what to do once it is back."""

    name: str
    service: Restartable
    on_restart: Callable[[], Awaitable[None]] | None = None
    failures: int = 0
    restarts: int = 0
    up_since: float = field(default_factory=time.monotonic)


class Supervisor:
    """Watches children every `poll_seconds` and restarts the dead ones."""

    def __init__(self, children: list[Child], *, poll_seconds: float = 0.5) -> None:
        self.children = children
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        """Until cancelled: restart each child that has exited."""
        while True:
            for child in self.children:
                if not child.service.is_running:
                    await self._restart(child)
            await asyncio.sleep(self.poll_seconds)

    async def _restart(self, child: Child) -> None:
        if time.monotonic() - child.up_since >= STABLE_SECONDS:
            child.failures = 0
        while not child.service.is_running:
            child.failures += 1
            wait = backoff_seconds(child.failures)
            log.warning(
                "%s exited (code %s); restarting it in %.1fs (attempt %d)",
                child.name,
                _exit_code(child.service),
                wait,
                child.failures,
            )
            await asyncio.sleep(wait)
            child.service.kill()  # reaps the dead process (its log handle)
            try:
                await child.service.start_async()
            except Exception as exc:  # the next attempt waits longer
                log.warning("%s did not come back: %s", child.name, str(exc).splitlines()[0])
        child.restarts += 1
        child.up_since = time.monotonic()
        log.info("%s is back (restart %d)", child.name, child.restarts)
        if child.on_restart is not None:
            try:
                await child.on_restart()
            except Exception:
                log.exception("%s: the work after its restart failed", child.name)


def _exit_code(service: Restartable) -> int | None:
    process = getattr(service, "process", None)
    return process.returncode if isinstance(process, ManagedProcess) else None
