"""The outbox relay: publishes stored events to Kafka and marks them sent.

Events are read in sequence order, published, and only then marked; a crash
in between re-publishes, which consumers absorb (event versions make them
idempotent). While Kafka is down, commands are still accepted and the relay
retries with capped exponential backoff; when Kafka returns, every event
arrives once more in order. A lease in the store keeps one relay active at a
time, so that two API processes never interleave one aggregate's events.

The lease (adapters/mongo/lease.py) is renewed by a heartbeat beside the
publishing, so a slow batch never lets it lapse, and it moves to another
relay only when its holder is gone (a dead process of the same host: at
once) or has not renewed it for its TTL. The holder starts a batch only
while its lease is valid and abandons a batch whose lease ran out mid-way
(`_fenced`), before any other relay may take it; the batch stays unmarked
and its next holder publishes it again, in sequence order. Records the
abandoned batch had already handed to the Kafka client may still land: they
are earlier copies of what the next holder publishes, in the same order per
aggregate, which the consumers drop by version — never a reordering, never
a lost or doubled application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential_jitter,
)

from domain.dead_letters import SOURCE_OUTBOX, DeadLetter, letter_id
from domain.events import EventEnvelope
from domain.ports import (
    DeadLetterStore,
    EventPublisher,
    EventStore,
    PublishRefused,
    is_transient,
)
from observability import metrics, trace_context, tracing
from observability.logs import aggregate_ids

log = logging.getLogger(__name__)

T = TypeVar("T")


class RelayLease(Protocol):
    """The relay's lease (adapters.mongo.lease.MongoLease)."""

    renew_seconds: float

    async def acquire(self) -> bool:
        """Take or renew the lease; False when another holder has it."""
        ...

    def valid_for(self) -> float:
        """Seconds this holder may still act on the lease (0: not held)."""
        ...


class LeaseLost(Exception):
    """The lease ran out while a batch was being published."""


# How long a stopping relay waits for its lease heartbeat (a store call in
# flight) before it ends anyway: the lease then simply lapses.
HEARTBEAT_STOP_SECONDS = 5.0


class OutboxRelay:
    def __init__(
        self,
        store: EventStore,
        publisher: EventPublisher,
        dead_letters: DeadLetterStore,
        *,
        poll_seconds: float = 0.2,
        batch_size: int = 500,
        count_backlog: Callable[[], Awaitable[int]] | None = None,
        backlog_every_seconds: float = 5.0,
        lease: RelayLease | None = None,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._dead_letters = dead_letters
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._lease = lease  # None: the only relay
        self._wakeup = asyncio.Event()
        self._retrying = AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.1, max=5.0, jitter=0.1),
            # A cancellation a driver turned into a timeout is no failure to retry.
            retry=retry_if_exception(lambda exc: is_transient(exc) and not _being_cancelled()),
            before_sleep=_record_failure,
            reraise=True,
        )
        self.published_total = 0
        self._count_backlog = count_backlog
        self._backlog_every = backlog_every_seconds
        self._backlog_counted_at = -math.inf
        # the last backlog this relay measured (herald_outbox_pending is the
        # process's: another Herald in the same process writes it too)
        self.backlog: int | None = None

    def notify(self) -> None:
        """Wake the relay now (a command just appended events in this process)."""
        self._wakeup.set()

    async def run_once(self) -> int:
        """Publish one batch; returns how many events were published."""
        with tracing.untraced():  # an idle poll leaves no trace
            if self._lease is not None and not await self._lease.acquire():
                return 0
            batch = await self._store.unpublished(self._batch_size)
            await self._sample_backlog(len(batch))
        if not batch:
            return 0
        started = time.perf_counter()
        with trace_context.relay_batch(batch):
            refused: Mapping[str, str] = {}
            try:
                await self._fenced(self._publisher.publish(batch))
            except LeaseLost:
                log.warning(
                    "relay: the outbox lease ran out during a batch of %d events (not renewed "
                    "in time); left for its next holder",
                    len(batch),
                )
                return 0
            except PublishRefused as refusal:
                refused = refusal.refused
                await self._park([e for e in batch if e.event_id in refused], refused)
            await self._store.mark_published(
                [event.event_id for event in batch if event.event_id not in refused]
            )
        elapsed = time.perf_counter() - started
        metrics.RELAY_PUBLISHED.inc(len(batch))
        metrics.RELAY_BATCH_SECONDS.observe(elapsed)
        now = time.time()
        for event in batch:
            metrics.RELAY_EVENT_LATENCY.observe(max(now - event.occurred_at.timestamp(), 0.0))
        self.published_total += len(batch)
        return len(batch)

    async def _sample_backlog(self, fetched: int | None) -> None:
        """herald_outbox_pending, measured by the relay that holds the lease
        (every `backlog_every_seconds`, and at once when the outbox is empty),
        before it publishes and while a batch waits on the broker (`fetched`
        None): a backlog the broker does not take still shows."""
        if fetched == 0:
            self.backlog = 0
            metrics.OUTBOX_PENDING.set(0)
            return
        now = time.monotonic()
        if self._count_backlog is None or now - self._backlog_counted_at < self._backlog_every:
            return
        self._backlog_counted_at = now
        try:
            self.backlog = await self._count_backlog()
            metrics.OUTBOX_PENDING.set(self.backlog)
        except Exception as exc:  # the gauge keeps its last value; publishing goes on
            metrics.OUTBOX_SAMPLE_FAILURES.inc()
            log.debug("cannot count the outbox backlog: %s", exc)

    async def _park(self, events: Sequence[EventEnvelope], reasons: Mapping[str, str]) -> None:
        now = datetime.now(UTC)
        for event in events:
            reason = reasons[event.event_id]
            await self._dead_letters.park(
                DeadLetter(
                    id=letter_id(SOURCE_OUTBOX, event.event_id),
                    source=SOURCE_OUTBOX,
                    kind=reason.split(":", 1)[0],
                    reason=reason,
                    parked_at=now,
                    event_id=event.event_id,
                    aggregate_type=event.aggregate_type,
                    aggregate_id=event.aggregate_id,
                    version=event.version,
                )
            )
            metrics.DEAD_LETTERS.labels(SOURCE_OUTBOX, reason.split(":", 1)[0]).inc()
            log.error(
                "relay: the broker refuses event %s for good, parked: %s",
                event.event_id,
                reason,
                extra=aggregate_ids(event.aggregate_type, event.aggregate_id),
            )
        await self._store.park([event.event_id for event in events], now)
        metrics.RELAY_PARKED.inc(len(events))

    async def _fenced(self, publishing: Awaitable[T]) -> T:
        """`publishing`, abandoned (LeaseLost) once the lease is no longer
        valid. The backlog is measured meanwhile: a broker that went away
        while a batch was in flight holds it until it is back (aiokafka keeps
        a batch for the partition leader it knows, unexpired), and the outbox
        alert must still see what piles up behind it."""
        task = asyncio.ensure_future(publishing)
        try:
            while not task.done():
                wait = self._backlog_every
                if self._lease is not None:
                    remaining = self._lease.valid_for()
                    if remaining <= 0:
                        task.cancel()
                        await asyncio.wait({task})
                        raise LeaseLost
                    # the heartbeat may renew meanwhile: look again when this runs out
                    wait = min(wait, remaining)
                await asyncio.wait({task}, timeout=wait)
                if not task.done():
                    with tracing.untraced():
                        await self._sample_backlog(None)
                    if _being_cancelled():  # a driver swallowed our CancelledError
                        raise asyncio.CancelledError
        except asyncio.CancelledError:
            task.cancel()
            raise
        return task.result()

    async def _keep_lease(self, lease: RelayLease) -> None:
        """The heartbeat: renew the lease while a batch is being published
        (each batch also takes or renews it first)."""
        while True:
            if _being_cancelled():  # a driver swallowed our CancelledError: stop anyway
                raise asyncio.CancelledError
            await asyncio.sleep(lease.renew_seconds)
            try:
                with tracing.untraced():  # a heartbeat leaves no trace
                    await lease.acquire()
            except Exception as exc:  # the store is away: the lease lapses, the fence stops us
                if _being_cancelled():
                    raise asyncio.CancelledError from exc
                log.debug("relay: cannot renew the outbox lease: %s", exc)

    async def run(self) -> None:
        """Drain the outbox forever; retry failures with capped exponential backoff."""
        heartbeat = (
            None
            if self._lease is None
            else asyncio.create_task(self._keep_lease(self._lease), name="relay:lease")
        )
        try:
            await self._drain()
        finally:
            if heartbeat is not None:  # ended before a stop releases the lease
                heartbeat.cancel()
                await asyncio.wait({heartbeat}, timeout=HEARTBEAT_STOP_SECONDS)

    async def _drain(self) -> None:
        while True:
            if _being_cancelled():  # a driver swallowed our CancelledError: stop anyway
                raise asyncio.CancelledError
            async for attempt in self._retrying:
                with attempt:
                    published = await self.run_once()
            metrics.RELAY_UP.set(1)
            if published == self._batch_size:
                continue  # more waiting: keep draining
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a
            # cancellation that arrives as the wakeup fires (a notify() per
            # command makes that likely), and the relay could never be stopped.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wakeup.wait()
            self._wakeup.clear()


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def relay_stopped() -> None:
    """The relay run ended on an unexpected error (its supervisor restarts it):
    what the relay-down alert reads must say so."""
    metrics.RELAY_UP.set(0)
    metrics.RELAY_FAILURES.inc()


def _record_failure(state: RetryCallState) -> None:
    metrics.RELAY_UP.set(0)
    metrics.RELAY_FAILURES.inc()
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    log.warning("relay attempt %d failed: %s", state.attempt_number, error)
