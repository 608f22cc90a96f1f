"""Read-your-writes: wait until the projections a query reads have applied the
event a consistency token names — bounded, then say NOT_CAUGHT_UP.

A projection that does not follow the token's stream answers at once
(`ConsistencyToken.awaited_by`); one that does records every event it has
processed — applied or parked as a dead letter — so a token is always met once
the projection has read the log up to it.

The waiting readers of one process share one poll (`AppliedVersions`): each
reader polling the store on its own cost N reads per interval for N readers,
and at 50 commands/s with every writer reading its write back, those reads
took the store the projectors write to, so the projectors fell behind and
more readers waited (issue 16, freshness: p99 18 s)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from domain.consistency import ConsistencyToken
from domain.ports import ProjectionStateStore
from observability import metrics
from queries.errors import NOT_CAUGHT_UP, coded

POLL_SECONDS = 0.02


class AppliedVersions:
    """Waits on the applied versions of `state`, one poll for every waiter.

    While anyone waits, one task reads every awaited aggregate's applied
    version with one `applied_versions` call per projection each
    `poll_seconds` (≤ 20 ms added to accepted → visible), and wakes the
    waiters whose version is reached. The task ends when nobody waits. A
    store failure during a poll is raised to every waiter of that poll
    (StoreError, as a direct read would)."""

    def __init__(self, state: ProjectionStateStore, poll_seconds: float = POLL_SECONDS) -> None:
        self.state = state
        self.poll_seconds = poll_seconds
        # (projection, aggregate id) → [(version awaited, its waiter)]
        self._waiting: dict[tuple[str, str], list[tuple[int, asyncio.Future[None]]]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def until(self, projection: str, aggregate_id: str, version: int) -> None:
        """Return once `projection` has applied `version` of `aggregate_id`.

        Unbounded: the caller bounds it (asyncio.timeout); a cancelled wait
        leaves nothing behind. Raises StoreError when a poll fails."""
        key = (projection, aggregate_id)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((version, waiter))
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="consistency-waits")
        try:
            await waiter
        finally:
            self._forget(key, waiter)

    def _forget(self, key: tuple[str, str], waiter: asyncio.Future[None]) -> None:
        waiters = [w for w in self._waiting.get(key, ()) if w[1] is not waiter]
        if waiters:
            self._waiting[key] = waiters
        else:
            self._waiting.pop(key, None)

    async def _poll(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(self.poll_seconds)
                by_projection: defaultdict[str, list[str]] = defaultdict(list)
                for projection, aggregate_id in self._waiting:
                    by_projection[projection].append(aggregate_id)
                for projection, aggregate_ids in by_projection.items():
                    await self._read(projection, aggregate_ids)
        finally:
            self._poller = None

    async def _read(self, projection: str, aggregate_ids: list[str]) -> None:
        try:
            applied = await self.state.applied_versions(projection, aggregate_ids)
        except Exception as failure:  # every waiter of this read hears it, as its own read's
            for aggregate_id in aggregate_ids:
                for _, waiter in self._waiting.get((projection, aggregate_id), ()):
                    if not waiter.done():
                        waiter.set_exception(failure)
            return
        for aggregate_id in aggregate_ids:
            seen = applied.get(aggregate_id, 0)
            for version, waiter in self._waiting.get((projection, aggregate_id), ()):
                if version <= seen and not waiter.done():
                    waiter.set_result(None)


async def wait_until_projected(
    token_text: str | None,
    projection: str,
    waits: AppliedVersions,
    timeout_seconds: float,
) -> None:
    """Return once `projection` has applied the write `token_text` names (at
    once when there is no token, or the projection does not follow its
    stream); past `timeout_seconds`, raise a GraphQL error coded
    NOT_CAUGHT_UP. Raises StoreError when the store fails."""
    if not token_text:
        return
    token = ConsistencyToken.decode(token_text)
    if not token.awaited_by(projection):
        return
    # an applied token costs one read and no wait
    if await waits.state.applied_version(projection, token.aggregate_id) >= token.version:
        return
    started = time.monotonic()
    waited = metrics.CONSISTENCY_WAIT_SECONDS.labels(projection)
    try:
        async with asyncio.timeout(timeout_seconds):
            await waits.until(projection, token.aggregate_id, token.version)
    except TimeoutError:
        metrics.CONSISTENCY_WAITS.labels(projection, "timed_out").inc()
        waited.observe(time.monotonic() - started)
        applied = await waits.state.applied_version(projection, token.aggregate_id)
        raise coded(
            f"projection {projection!r} has not caught up with your last change yet "
            f"(applied {applied}, need {token.version}); retry shortly",
            NOT_CAUGHT_UP,
            projection=projection,
        ) from None
    metrics.CONSISTENCY_WAITS.labels(projection, "caught_up").inc()
    waited.observe(time.monotonic() - started)
