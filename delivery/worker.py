"""Channel workers: drain the delivery log, one set of tasks per channel.

Each channel has its own tasks, breaker and backoff, so a slow or failing
channel never holds up another, nor the planner or the projections (they only
write the log). A delivery goes through:

1. `claim`: the attempt is counted and the delivery leased to this task in
   the log — before the call;
2. the call, inside the channel's circuit breaker (`purgatory`; a permanent
   failure does not count against the channel);
3. the outcome: DELIVERED; or RETRYING at now + exponential backoff with
   jitter (tenacity's `wait_exponential_jitter`), stored in the log so a retry
   survives a restart; or DEAD_LETTERED with `lastError` after a permanent
   failure or the last of `max_attempts`.

A crash between 1 and 3 leaves the lease to run out; the next claim re-sends
under the same message id (exactly once as the receiver sees it). While the
breaker is open no delivery is claimed; after the cool-down one probe decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import BaseRetrying, RetryCallState, wait_exponential_jitter

from adapters.mongo.client import Document
from adapters.mongo.deliveries import MongoDeliveryLog
from adapters.mongo.notice_projection import MongoNoticeProjectionStore
from domain.delivery import DeliveryStatus, IssuedNotice, OutboundNotice
from domain.ports import Channel, ChannelError, PermanentChannelError, StoreError
from observability import metrics

log = logging.getLogger(__name__)

_BREAKER_LEVEL = {"closed": 0, "half-opened": 1, "opened": 2}


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
        deliveries: MongoDeliveryLog,
        notices: MongoNoticeProjectionStore,
        breakers: AsyncCircuitBreakerFactory,
        *,
        max_attempts: int,
        retry_seconds: float,
        concurrency: int = 8,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._channel = channel
        self._name = channel.channel.value
        self._deliveries = deliveries
        self._notices = notices
        self._breakers = breakers
        self._max_attempts = max_attempts
        self._backoff = wait_exponential_jitter(
            multiplier=retry_seconds, max=300.0, jitter=retry_seconds
        )
        self._concurrency = concurrency
        self._lease = timedelta(seconds=lease_seconds)
        self._poll = poll_seconds
        self._clock = clock
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """New deliveries were planned: look now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        metrics.BREAKER_STATE.labels(self._name).set(0)
        await asyncio.gather(*(self._loop() for _ in range(self._concurrency)))

    async def _loop(self) -> None:
        while True:
            try:
                if await self._wait_while_open():
                    continue
                claimed = await self._deliveries.claim(
                    self._channel.channel, self._clock(), self._lease
                )
                if claimed is None:
                    await self._idle()
                    continue
                await self._attempt(claimed)
            except asyncio.CancelledError:
                raise
            except StoreError as exc:
                log.warning("channel %s: delivery log unavailable (%s)", self._name, exc)
                await asyncio.sleep(self._poll)
            except Exception:
                log.exception("channel %s: unexpected failure; going on", self._name)
                await asyncio.sleep(self._poll)

    async def _idle(self) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), self._poll)

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

    async def _attempt(self, claimed: Document) -> None:
        key = str(claimed["_id"])
        message = OutboundNotice(
            IssuedNotice.from_payload(claimed["notice"]),
            self._channel.channel,
            str(claimed["address"]),
            str(claimed["messageId"]),
        )
        attempts = int(claimed["attempts"])
        breaker = await self._breakers.get_breaker(self._name)
        try:
            async with breaker:
                metrics.DELIVERY_ATTEMPTS.labels(self._name).inc()
                await self._channel.send(message)
        except OpenedState as opened:
            # Another task saw the breaker open first: this claim does not count.
            retry_at = datetime.fromtimestamp(opened.opened_at + breaker.context.ttl, UTC)
            await self._deliveries.release(key, self._clock(), retry_at)
            return
        except ChannelError as exc:
            await self._failed(key, message, attempts, exc)
            return
        now = self._clock()
        if await self._deliveries.delivered(key, now):
            metrics.DELIVERIES.labels(self._name, "delivered").inc()
            latency = (now - message.notice.issued_at).total_seconds()
            metrics.DELIVERY_LATENCY.labels(self._name).observe(max(latency, 0.0))
        await self._settle(message.notice, now)

    async def _failed(
        self, key: str, message: OutboundNotice, attempts: int, exc: ChannelError
    ) -> None:
        now = self._clock()
        last = not exc.transient or attempts >= self._max_attempts
        retry_at = None if last else now + timedelta(seconds=self._delay(attempts))
        await self._deliveries.failed(key, str(exc), now, retry_at)
        outcome = "dead_lettered" if last else "retrying"
        metrics.DELIVERIES.labels(self._name, outcome).inc()
        if last:
            metrics.DEAD_LETTERS.labels(self._name).inc()
            log.warning("delivery %s dead-lettered after %d attempt(s): %s", key, attempts, exc)

    def _delay(self, attempts: int) -> float:
        # tenacity's backoff, computed for a retry the log schedules (durable)
        state = RetryCallState(cast(BaseRetrying, None), None, (), {})
        state.attempt_number = attempts
        return float(self._backoff(state))

    async def _settle(self, notice: IssuedNotice, now: datetime) -> None:
        """When every channel planned for this version delivered, the notice is delivered."""
        planned = await self._deliveries.of_version(notice.notice_id, notice.version)
        if planned and all(d["status"] == DeliveryStatus.DELIVERED.value for d in planned):
            await self._notices.mark_delivered(notice.notice_id, notice.version, now)
