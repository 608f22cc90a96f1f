"""KafkaEventPublisher: appends envelopes to the event log, in order per key."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from adapters.kafka.codec import encode
from adapters.kafka.errors import refuses_record
from adapters.kafka.producer import started_producer, stop_quietly
from adapters.kafka.topics import topic_for
from domain.events import EventEnvelope
from domain.ports import PublishError, PublishRefused
from observability import trace_context


class KafkaEventPublisher:
    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str,
        *,
        idempotent: bool,
        request_timeout_ms: int = 10_000,
        max_request_size: int = 1_048_576,
    ) -> None:
        self._bootstrap = bootstrap
        self._prefix = topic_prefix
        self._idempotent = idempotent
        self._timeout_ms = request_timeout_ms
        self._max_request_size = max_request_size  # aiokafka's default, 1 MiB
        self._producer: AIOKafkaProducer | None = None

    async def _ensure_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = await started_producer(
                self._bootstrap,
                request_timeout_ms=self._timeout_ms,
                idempotent=self._idempotent,
                linger_ms=2,
                max_request_size=self._max_request_size,
            )
        return self._producer

    async def publish(self, events: Sequence[EventEnvelope]) -> None:
        """Send all, then wait for every acknowledgement.

        aiokafka keeps the send order per partition, and every event of one
        aggregate goes to one partition (keyed by aggregate id). Raises
        PublishRefused naming the events the broker refuses for good (the
        others were published); PublishError on any other failure (retry the
        whole batch: consumers drop what they already have).
        """
        refused: dict[str, str] = {}
        try:
            producer = await self._ensure_started()
            sent: list[tuple[EventEnvelope, asyncio.Future[object]]] = []
            for event in events:
                try:
                    # the record carries its own event's trace context (W3C headers)
                    with trace_context.producing(event.trace_context) as trace_headers:
                        future = await producer.send(
                            topic_for(self._prefix, event.aggregate_type),
                            value=encode(event),
                            key=event.aggregate_id.encode(),
                            headers=[
                                ("eventType", event.event_name.encode()),
                                ("eventId", event.event_id.encode()),
                                *trace_headers,
                            ],
                        )
                except KafkaError as exc:
                    if not refuses_record(exc):
                        raise
                    refused[event.event_id] = f"{type(exc).__name__}: {exc}"
                    continue
                sent.append((event, future))
            outcomes = await asyncio.gather(*(f for _, f in sent), return_exceptions=True)
            for (event, _), outcome in zip(sent, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if not refuses_record(outcome):
                        raise outcome
                    refused[event.event_id] = f"{type(outcome).__name__}: {outcome}"
        except (KafkaError, OSError, TimeoutError) as exc:
            # A failed producer may hold half-sent batches: start afresh next time.
            await self.close()
            raise PublishError(f"publish to {self._bootstrap} failed: {exc!r}") from exc
        if refused:
            raise PublishRefused(refused)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        await stop_quietly(producer)
