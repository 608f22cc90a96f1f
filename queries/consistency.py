"""Read-your-writes: wait until the projections a query reads have applied the
event a consistency token names — bounded, then say NOT_CAUGHT_UP.

A projection that does not follow the token's stream answers at once
(`ConsistencyToken.awaited_by`); one that does records every event it has
processed — applied or parked as a dead letter — so a token is always met once
the projection has read the log up to it."""

from __future__ import annotations

import asyncio
import time

from domain.consistency import ConsistencyToken
from domain.ports import ProjectionStateStore
from observability import metrics
from queries.errors import NOT_CAUGHT_UP, coded

MAX_POLL_SECONDS = 0.1


async def wait_until_projected(
    token_text: str | None,
    projection: str,
    state: ProjectionStateStore,
    timeout_seconds: float,
    poll_seconds: float = 0.02,
) -> None:
    if not token_text:
        return
    token = ConsistencyToken.decode(token_text)
    if not token.awaited_by(projection):
        return
    started = time.monotonic()
    deadline = started + timeout_seconds
    delay = poll_seconds
    waited = metrics.CONSISTENCY_WAIT_SECONDS.labels(projection)
    while True:
        applied = await state.applied_version(projection, token.aggregate_id)
        if applied >= token.version:
            if delay > poll_seconds:  # it did wait (an applied token costs one read)
                metrics.CONSISTENCY_WAITS.labels(projection, "caught_up").inc()
                waited.observe(time.monotonic() - started)
            return
        if time.monotonic() >= deadline:
            metrics.CONSISTENCY_WAITS.labels(projection, "timed_out").inc()
            waited.observe(time.monotonic() - started)
            raise coded(
                f"projection {projection!r} has not caught up with your last change yet "
                f"(applied {applied}, need {token.version}); retry shortly",
                NOT_CAUGHT_UP,
                projection=projection,
            )
        await asyncio.sleep(delay)
        # capped at 0.1 s: a poll adds at most that to accepted → visible (the
        # issue's p99 goal is 0.3 s), at ten reads a second per waiting reader
        delay = min(delay * 1.5, MAX_POLL_SECONDS)
