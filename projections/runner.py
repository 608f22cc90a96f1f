"""ProjectionRunner: one consumer-group member feeding one projector.

For each batch: apply it to the read model, record the per-aggregate versions
applied (what read-your-writes waits on), then commit the offsets. A crash
anywhere before the commit redelivers the batch, and the projector's version
guards make the redelivery change nothing (invariant 4). A failing store is
retried with backoff on the same batch — an event is never skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from adapters.kafka.consumer import KafkaEventConsumer
from adapters.mongo.projection_state import MongoProjectionState
from domain.events import EventEnvelope
from domain.ports import StoreError
from observability import metrics, tracing

log = logging.getLogger(__name__)


class Projector(Protocol):
    name: str
    topics: Sequence[str]

    async def apply(self, events: Sequence[EventEnvelope]) -> None:
        """Apply events idempotently; raise StoreError to have the batch retried."""
        ...


def highest_versions(events: Sequence[EventEnvelope]) -> dict[str, int]:
    versions: dict[str, int] = {}
    for event in events:
        versions[event.aggregate_id] = max(versions.get(event.aggregate_id, 0), event.version)
    return versions


class ProjectionRunner:
    def __init__(
        self,
        projector: Projector,
        consumer: KafkaEventConsumer,
        state: MongoProjectionState,
        *,
        report_every_seconds: float = 1.0,
        name: str | None = None,
    ) -> None:
        self._projector = projector
        self._name = name or projector.name
        self._consumer = consumer
        self._state = state
        self._report_every = report_every_seconds
        self._last_report = 0.0
        self.applied_total = 0

    @property
    def name(self) -> str:
        """What progress is reported under (a rebuild reports as "<name>:rebuild")."""
        return self._name

    async def lag(self) -> tuple[int, int]:
        """(position, lag) of this member's partitions."""
        return await self._consumer.lag()

    async def run(self) -> None:
        await self._consumer.start()
        try:
            while True:
                await self.step()
        finally:
            await self._consumer.stop()

    async def step(self) -> None:
        batch = await self._consumer.next_batch()
        if batch.events:
            with tracing.span(
                tracing.PROJECTION_BATCH_SPAN,
                {"herald.projection": self.name, "herald.projection.events": len(batch.events)},
            ):
                async for attempt in AsyncRetrying(
                    wait=wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.1),
                    retry=retry_if_exception_type(StoreError),
                    before_sleep=self._log_retry,
                    reraise=True,
                ):
                    with attempt:
                        await self._projector.apply(batch.events)
                        await self._state.record_applied(self.name, highest_versions(batch.events))
            self.applied_total += len(batch.events)
            metrics.PROJECTED_EVENTS.labels(self.name, "applied").inc(len(batch.events))
        if batch.malformed:
            metrics.PROJECTED_EVENTS.labels(self.name, "malformed").inc(batch.malformed)
        await self._consumer.commit(batch.offsets)
        with tracing.untraced():  # periodic housekeeping leaves no trace
            await self._maybe_report()

    def _log_retry(self, state: RetryCallState) -> None:
        # A batch that keeps failing must be visible: it holds the projection back.
        error = state.outcome.exception() if state.outcome is not None else None
        metrics.PROJECTED_EVENTS.labels(self.name, "retried").inc()
        log.warning(
            "%s: batch attempt %d failed (%s); retrying", self.name, state.attempt_number, error
        )

    async def _maybe_report(self) -> None:
        now = time.monotonic()
        if now - self._last_report < self._report_every:
            return
        self._last_report = now
        position, lag = await self._consumer.lag()
        metrics.PROJECTION_POSITION.labels(self.name).set(position)
        metrics.PROJECTION_LAG.labels(self.name).set(lag)
        try:
            await self._state.report(self.name, position, lag)
        except StoreError as exc:
            log.warning("cannot report %s state: %s", self.name, exc)


async def run_forever(runner: ProjectionRunner, restart_delay: float = 1.0) -> None:
    """Keep a runner alive across broker outages (the consumer restarts)."""
    while True:
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("projection %s stopped; restarting", runner.name)
            await asyncio.sleep(restart_delay)
