"""ProjectionRunner: one consumer-group member feeding one projector.

For each batch: apply it to the read model, record the per-aggregate versions
processed (what read-your-writes waits on), then commit the offsets. A crash
anywhere before the commit redelivers the batch, and the projector's version
guards make the redelivery change nothing (invariant 4).

Failures are told apart (`domain.ports.is_transient`): an unreachable store or
broker is retried with backoff on the same batch — an event is never skipped
for an outage. A record that cannot be decoded or applied as it is (a poison
record) is retried one by one and then parked as a dead letter — in the
`dead_letters` store and on the `<prefix>.deadletter.<projection>` topic — and
the partition moves on; `herald dlq replay` applies it again once fixed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential_jitter,
)

from domain.dead_letters import (
    MAX_PAYLOAD_CHARS,
    DeadLetter,
    letter_id,
    one_line,
    projection_source,
)
from domain.events import EventEnvelope
from domain.ports import (
    ConsumedRecord,
    DeadLetterStore,
    DeadLetterTopic,
    EventConsumer,
    ProjectionStateStore,
    PublishError,
    is_transient,
)
from observability import metrics, trace_context, tracing
from projections.checkpoint import AppliedThrough

log = logging.getLogger(__name__)

T = TypeVar("T")

UNDECODABLE = "undecodable"


class Projector(Protocol):
    name: str
    topics: Sequence[str]

    async def apply(self, events: Sequence[EventEnvelope]) -> None:
        """Apply events idempotently; raise StoreUnavailable to have the batch
        retried, anything else to have the record that causes it parked."""
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
        consumer: EventConsumer,
        state: ProjectionStateStore,
        *,
        dead_letters: DeadLetterStore,
        dead_letter_topic: DeadLetterTopic | None = None,
        report_every_seconds: float = 1.0,
        name: str | None = None,
        checkpoint: AppliedThrough | None = None,
    ) -> None:
        self._projector = projector
        self._name = name or projector.name
        self._consumer = consumer
        self._state = state
        self._dead_letters = dead_letters
        self._dead_letter_topic = dead_letter_topic
        self._report_every = report_every_seconds
        self._checkpoint = checkpoint
        self._last_report = 0.0
        self._caught_up = False
        self._targets: dict[str, int] | None = None
        self._retargeted = 0  # ends measured before a retarget are stale
        self.applied_total = 0
        self.parked_total = 0
        self.failing: str | None = None  # the error being retried, while it lasts

    @property
    def name(self) -> str:
        """What progress is reported under (a rebuild reports as "<name>:rebuild")."""
        return self._name

    @property
    def source(self) -> str:
        """The dead-letter source of this runner's parked records."""
        return projection_source(self._name)

    @property
    def ready(self) -> bool:
        """True once this member has its partitions and has consumed each up to
        where the log ended when they were assigned, and nothing is failing:
        an event written now is projected within the normal delay."""
        return self._caught_up and self.failing is None

    def retarget(self) -> None:
        """Catch up again, with the log as it ends from now (more was published
        into it — e.g. the record re-published into an empty log — after this
        member measured where it ended)."""
        self._caught_up, self._targets = False, None
        self._retargeted += 1

    async def rewind(self) -> None:
        """Consume this member's partitions again from their start: the broker
        lost the log, and its re-fill writes a new one (what this member read
        of the lost log is absorbed by the projector's version guards when it
        comes again)."""
        await self._consumer.rewind()

    async def lag(self) -> tuple[int, int] | None:
        """(position, lag) of this member's partitions; None when unknown."""
        return await self._consumer.lag()

    async def run(self) -> None:
        self._caught_up, self._targets = False, None
        await self._consumer.start()
        try:
            while True:
                await self.step()
        finally:
            self._caught_up = False
            await self._consumer.stop()

    async def step(self) -> None:
        batch = await self._consumer.next_batch()
        parked = 0
        for record in batch.undecodable:
            await self._park(record, UNDECODABLE, record.error or "does not decode")
            parked += 1
        if batch.events:
            # per-record spans continue each record's trace (see trace_context.processing)
            group = getattr(self._consumer, "group_id", None)
            with trace_context.processing(self.name, group, batch.records) as events:
                fresh = events if self._caught_up else await self._not_applied(events)
                try:
                    if fresh:
                        await self._retrying(lambda: self._projector.apply(fresh))
                except Exception:
                    # Some record here cannot be applied: find it, one at a time.
                    ids = {event.event_id for event in fresh}
                    parked += await self._apply_one_by_one(
                        [r for r in batch.records if r.event and r.event.event_id in ids]
                    )
                # Parked events count as processed: a token naming one is met.
                versions = highest_versions(events)
                await self._retrying(lambda: self._state.record_applied(self.name, versions))
            applied = len(batch.records) - parked
            self.applied_total += applied
            metrics.PROJECTED_EVENTS.labels(self.name, "applied").inc(applied)
        if parked:
            self.parked_total += parked
            metrics.PROJECTED_EVENTS.labels(self.name, "parked").inc(parked)
        await self._consumer.commit(batch.offsets)
        with tracing.untraced():  # periodic housekeeping leaves no trace
            await self._maybe_report()
            if not self._caught_up:
                await self._check_caught_up()

    async def _not_applied(self, events: Sequence[EventEnvelope]) -> list[EventEnvelope]:
        """`events` but those this projection applied already (the tracking
        holds a version at least theirs: recorded only after their effects).
        Asked while catching up, when most of a batch may be a record
        re-published into an empty log: each re-applied event would be
        absorbed by the version guards, but only after the projector's reads
        (a notices reconcile reads the action, its snapshots and holders)."""
        applied = await self._retrying(
            lambda: self._state.applied_versions(self.name, {e.aggregate_id for e in events})
        )
        return [e for e in events if e.version > applied.get(e.aggregate_id, 0)]

    async def _apply_one_by_one(self, records: Sequence[ConsumedRecord]) -> int:
        parked = 0
        for record in records:
            if record.event is None:
                continue  # parked already
            one = [record.event]
            try:
                await self._retrying(lambda: self._projector.apply(one))  # noqa: B023 (awaited here)
            except Exception as exc:
                await self._park(record, type(exc).__name__, one_line(exc))
                parked += 1
        return parked

    async def _park(self, record: ConsumedRecord, kind: str, reason: str) -> None:
        event = record.event
        payload = None if record.value is None else record.value.decode("utf-8", "replace")
        letter = DeadLetter(
            id=letter_id(self.source, record.topic, record.partition, record.offset),
            source=self.source,
            kind=kind,
            reason=reason,
            parked_at=datetime.now(UTC),
            event_id=None if event is None else event.event_id,
            aggregate_type=None if event is None else event.aggregate_type,
            aggregate_id=None if event is None else event.aggregate_id,
            version=None if event is None else event.version,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            payload=None if payload is None else payload[:MAX_PAYLOAD_CHARS],
        )
        await self._retrying(lambda: self._dead_letters.park(letter))
        if self._dead_letter_topic is not None:
            topic = self._dead_letter_topic
            await self._retrying(lambda: topic.send(letter, record.value))
        metrics.DEAD_LETTERS.labels(self.source, kind).inc()
        log.error(
            "%s: parked %s@%s:%s (event %s) as dead letter %s: %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            letter.event_id,
            letter.id,
            reason,
        )

    async def _retrying(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work`, retrying transient failures with capped backoff for as
        long as they last; any other failure is raised at once."""
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.1),
            retry=retry_if_exception(is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        ):
            with attempt:
                result = await work()
        self.failing = None
        return result

    def _log_retry(self, state: RetryCallState) -> None:
        # A batch that keeps failing must be visible: it holds the projection back.
        error = state.outcome.exception() if state.outcome is not None else None
        self.failing = repr(error)
        metrics.PROJECTED_EVENTS.labels(self.name, "retried").inc()
        log.warning(
            "%s: batch attempt %d failed (%s); retrying", self.name, state.attempt_number, error
        )

    async def _check_caught_up(self) -> None:
        if not self._consumer.joined():
            return
        retargeted = self._retargeted
        try:
            committed, ends = await self._consumer.progress()
        except PublishError:
            return
        if retargeted != self._retargeted:
            return
        if self._targets is None:
            self._targets = ends  # where the log ended when the partitions came
        self._caught_up = all(
            committed[key] >= end for key, end in self._targets.items() if key in committed
        )

    async def _maybe_report(self) -> None:
        now = time.monotonic()
        if now - self._last_report < self._report_every:
            return
        self._last_report = now
        if self._checkpoint is not None:
            try:
                await self._checkpoint.advance()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("cannot advance %s checkpoint: %s", self.name, exc)
        progress = await self._consumer.lag()
        metrics.PROJECTION_UP.labels(self.name).set(0 if progress is None else 1)
        if progress is None:  # broker unreachable: unknown, never a reassuring 0
            metrics.PROJECTION_LAG.labels(self.name).set(math.nan)
            return
        position, lag = progress
        metrics.PROJECTION_POSITION.labels(self.name).set(position)
        metrics.PROJECTION_LAG.labels(self.name).set(lag)
        try:
            await self._state.report(self.name, position, lag)
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("cannot report %s state: %s", self.name, exc)
