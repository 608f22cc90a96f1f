"""Channel workers: drain the delivery log, one set of tasks per channel.

Each channel has its own tasks, breaker and backoff, so a slow or failing
channel never holds up another, nor the planner or the projections (they only
write the log). A delivery goes through:

0. the planner hands the ids it planned to the channel's in-memory queue; a
   sweep of the log every `poll_seconds` queues what else is due (retries,
   leases of a dead worker that ran out, another process's plans);
1. `claim`: the attempt is counted and the delivery leased to this worker in
   the log — before the call (a batch in one write: what is queued, up to
   4 × `concurrency`, so a deep queue costs few writes);
2. the call (up to `concurrency` at once per channel), inside the channel's
   circuit breaker (`purgatory`; a permanent failure does not count against
   the channel);
3. the outcome (the batch's in one write): DELIVERED; or RETRYING at now + exponential backoff with
   jitter (tenacity's `wait_exponential_jitter`), stored in the log so a retry
   survives a restart; or DEAD_LETTERED with `lastError` after a permanent
   failure or the last of `max_attempts`.

A crash between 1 and 3 leaves the lease to run out; the next claim re-sends
under the same message id (exactly once as the receiver sees it). While the
breaker is open no delivery is claimed; after the cool-down one probe decides.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import BaseRetrying, RetryCallState, wait_exponential_jitter

from domain.delivery import ClaimedDelivery, DeliveryStatus, Outcome
from domain.ports import (
    Channel,
    ChannelError,
    DeliveryLog,
    NoticeDeliveryMarks,
    PermanentChannelError,
    StoreError,
)
from observability import metrics, trace_context
from observability.logs import log_context

log = logging.getLogger(__name__)

_BREAKER_LEVEL = {"closed": 0, "half-opened": 1, "opened": 2}
_QUEUE = 10_000  # delivery ids waiting in memory per channel; the rest wait in the log
_SWEEP_WOKEN = 10  # polls between sweeps while the planner wakes the worker
# A batch (claimed in one write, its outcomes recorded in one write) is at most
# this many rounds of `concurrency` sends: with the channels' 10 s timeouts a
# hung endpoint finishes it in 40 s, inside the 60 s lease.
_ROUNDS = 4


def breaker_factory(failures: int, cooldown_seconds: float) -> AsyncCircuitBreakerFactory:
    """One breaker per channel name; its state is exported as a gauge."""
    factory = AsyncCircuitBreakerFactory(
        default_threshold=failures,
        default_ttl=cooldown_seconds,
        exclude=[PermanentChannelError],
    )

    def export(name: str, event_name: str, event: Any) -> None:
        if event_name == "state_changed":
            metrics.BREAKER_STATE.labels(name).set(_BREAKER_LEVEL.get(event.state, 0))
            log.warning("channel %s: circuit breaker %s", name, event.state)

    factory.add_listener(export)
    return factory


class ChannelWorker:
    def __init__(
        self,
        channel: Channel,
        deliveries: DeliveryLog,
        breakers: AsyncCircuitBreakerFactory,
        *,
        max_attempts: int,
        retry_seconds: float,
        concurrency: int = 16,
        lease_seconds: float = 60.0,
        poll_seconds: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._channel = channel
        self._name = channel.channel.value
        self._deliveries = deliveries
        self._breakers = breakers
        self._max_attempts = max_attempts
        self._backoff = wait_exponential_jitter(
            multiplier=retry_seconds, max=300.0, jitter=retry_seconds
        )
        self._concurrency = concurrency
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        self._clock = clock
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=_QUEUE)
        self._sending = asyncio.Semaphore(concurrency)
        self._queued: set[str] = set()
        self._woken = False  # the planner queued deliveries since the last sweep

    def wake(self, keys: Sequence[str] = ()) -> None:
        """Deliveries were planned: queue them now rather than at the next sweep."""
        for key in keys:
            self._enqueue(key)
        self._woken = self._woken or bool(keys)

    def _enqueue(self, key: str) -> None:
        if key in self._queued or self._queue.full():
            return  # queued already, or the next sweep finds it
        self._queued.add(key)
        self._queue.put_nowait(key)

    async def run(self) -> None:
        metrics.BREAKER_STATE.labels(self._name).set(0)
        # Two batch loops: one batch's slowest send does not stall the channel.
        await asyncio.gather(self._sweep(), self._batches(), self._batches())

    async def _sweep(self) -> None:
        """Queue what the log holds due: retries whose time came, leases of a
        dead worker that ran out, deliveries planned by another process.

        While the planner keeps waking this worker the sweep runs only every
        `_SWEEP_WOKEN` polls: the store reads every due delivery of the channel
        whatever the limit, and during a fan-out that read would cost it more
        than the deliveries themselves."""
        polls = 0
        while True:
            polls += 1
            try:
                woken, self._woken = self._woken, False
                if self._queue.qsize() < self._concurrency and (not woken or polls >= _SWEEP_WOKEN):
                    polls = 0
                    room = self._queue.maxsize - self._queue.qsize()
                    # As many as the queue holds: the read costs what is due
                    # whatever the limit, so one sweep serves many batches.
                    for key in await self._deliveries.due(
                        self._channel.channel, self._clock(), room
                    ):
                        self._enqueue(key)
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                log.warning("channel %s: delivery log unavailable (%s)", self._name, exc)
            await asyncio.sleep(self._poll)

    async def _batches(self) -> None:
        while True:
            keys = [await self._queue.get()]
            while len(keys) < _ROUNDS * self._concurrency and not self._queue.empty():
                keys.append(self._queue.get_nowait())
            self._queued.difference_update(keys)
            try:
                while await self._wait_while_open():
                    pass
                claimed = await self._deliveries.claim(keys, self._clock(), self._lease)
                outcomes = await asyncio.gather(*(self._attempt(doc) for doc in claimed))
                delivered = await self._deliveries.record(outcomes)
                self._count(outcomes, delivered, claimed)
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                log.warning("channel %s: delivery log unavailable (%s)", self._name, exc)
                await asyncio.sleep(self._poll)  # the sweep finds the deliveries again
            except Exception:
                log.exception("channel %s: unexpected failure; going on", self._name)
                await asyncio.sleep(self._poll)

    def _count(
        self, outcomes: Sequence[Outcome], delivered: set[str], claimed: Sequence[ClaimedDelivery]
    ) -> None:
        issued_at = {c.delivery.key: c.delivery.issued_at for c in claimed}
        for outcome in outcomes:
            if outcome.key in delivered:
                metrics.DELIVERIES.labels(self._name, "delivered").inc()
                latency = (outcome.at - issued_at[outcome.key]).total_seconds()
                metrics.DELIVERY_LATENCY.labels(self._name).observe(max(latency, 0.0))
            elif outcome.status is DeliveryStatus.RETRYING:
                metrics.DELIVERIES.labels(self._name, "retrying").inc()
            elif outcome.status is DeliveryStatus.DEAD_LETTERED:
                metrics.DELIVERIES.labels(self._name, "dead_lettered").inc()
                metrics.DELIVERIES_DEAD_LETTERED.labels(self._name).inc()
                log.warning(
                    "delivery %s dead-lettered: %s",
                    outcome.key,
                    outcome.error,
                    extra={"delivery_id": outcome.key},
                )

    async def _wait_while_open(self) -> bool:
        """Sleep out an open breaker's cool-down (no claim, no attempt meanwhile)."""
        breaker = await self._breakers.get_breaker(self._name)
        context = breaker.context
        if context.state != "opened" or context.opened_at is None:
            return False
        remaining = context.opened_at + context.ttl - time.time()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(remaining, self._poll) + 0.01)
        return True

    async def _attempt(self, claimed: ClaimedDelivery) -> Outcome:
        key = claimed.delivery.key
        message = claimed.outbound
        attempts = claimed.delivery.attempts
        breaker = await self._breakers.get_breaker(self._name)
        async with self._sending:
            try:
                async with breaker:
                    metrics.DELIVERY_ATTEMPTS.labels(self._name).inc()
                    with (
                        trace_context.delivering(
                            self._name, message.trace_context, _attributes(claimed)
                        ),
                        log_context(  # on the channel client's own lines (httpx, SMTP)
                            action_id=message.notice.corporate_action_id,
                            notice_id=message.notice.notice_id,
                            delivery_id=key,
                        ),
                    ):
                        await self._channel.send(message)
            except OpenedState as opened:
                # The breaker opened while this batch waited: this claim does not count.
                retry_at = datetime.fromtimestamp(opened.opened_at + breaker.context.ttl, UTC)
                return Outcome(key, DeliveryStatus.PENDING, self._clock(), retry_at=retry_at)
            except ChannelError as exc:
                now = self._clock()
                if not exc.transient or attempts >= self._max_attempts:
                    return Outcome(key, DeliveryStatus.DEAD_LETTERED, now, error=str(exc))
                retry_at = now + timedelta(seconds=self._delay(attempts))
                return Outcome(key, DeliveryStatus.RETRYING, now, error=str(exc), retry_at=retry_at)
        return Outcome(key, DeliveryStatus.DELIVERED, self._clock())

    def _delay(self, attempts: int) -> float:
        # tenacity's backoff, computed for a retry the log schedules (durable)
        state = RetryCallState(cast(BaseRetrying, None), None, (), {})
        state.attempt_number = attempts
        return float(self._backoff(state))


def _attributes(claimed: ClaimedDelivery) -> dict[str, str | int]:
    delivery = claimed.delivery
    return {
        "herald.delivery.id": delivery.key,
        "herald.notice.id": delivery.notice_id,
        "herald.notice.version": delivery.version,
        "herald.delivery.attempt": delivery.attempts,
    }


class Settler:
    """Sets a notice's `deliveredAt` (and `noticeStats.delivered`) once every
    channel planned for its version delivered — in batches, from the log's
    delivered-but-unsettled deliveries, so a crash between a delivery and its
    notice's mark is picked up by the next pass, and the channels' hot path
    writes nothing but the delivery itself."""

    def __init__(
        self,
        deliveries: DeliveryLog,
        notices: NoticeDeliveryMarks,
        *,
        poll_seconds: float = 1.0,
        batch: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._deliveries = deliveries
        self._notices = notices
        self._poll = poll_seconds
        self._batch = batch
        self._clock = clock

    async def run(self) -> None:
        while True:
            try:
                while await self.settle_once() == self._batch:
                    pass  # a full batch settled: more may be waiting
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                log.warning("settler: delivery log unavailable (%s)", exc)
            await asyncio.sleep(self._poll)

    async def settle_once(self) -> int:
        """One pass; returns how many versions it settled. A version with a
        dead letter is settled undelivered (a replay that delivers it makes it
        unsettled again); one still in flight waits for the next pass."""
        versions = await self._deliveries.unsettled(self._batch)
        if not versions:
            return 0
        planned = await self._deliveries.of_notices(versions)
        complete: list[tuple[str, int]] = []
        settled: list[str] = []  # delivery ids of every settled version
        count = 0
        for key, deliveries in planned.items():
            statuses = {d.status for d in deliveries}
            if statuses == {DeliveryStatus.DELIVERED}:
                complete.append(key)
            elif DeliveryStatus.DEAD_LETTERED not in statuses:
                continue  # still in flight
            count += 1
            settled.extend(d.key for d in deliveries)
        await self._notices.mark_delivered(complete, self._clock())
        await self._deliveries.settle(settled)
        return count
