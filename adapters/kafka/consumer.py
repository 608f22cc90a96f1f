"""KafkaEventConsumer: a consumer-group member that hands projectors batches of
envelopes and commits offsets only after the batch's effects are stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from adapters.kafka.codec import decode
from domain.events import EventEnvelope
from domain.ports import ConsumedBatch, ConsumedRecord, LogPartition, PublishError
from observability.trace_context import TRACE_HEADERS

log = logging.getLogger(__name__)

LAG_TIMEOUT_SECONDS = 5.0


class KafkaEventConsumer:
    """The EventConsumer port on Apache Kafka (or Tansu), through aiokafka."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        *,
        client_id: str | None = None,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self._session_timeout_ms = session_timeout_ms
        self._topics = list(topics)
        self.group_id = group_id
        self._options = {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "client_id": client_id or group_id,
        }
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def _started(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "start() the consumer first"
        return self._consumer

    async def start(self) -> None:
        # Built here, not in __init__: aiokafka objects bind to the running loop.
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            **self._options,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=max(self._session_timeout_ms // 10, 100),
            max_poll_interval_ms=300_000,
        )
        try:
            await self._consumer.start()
        except (KafkaError, OSError) as exc:
            await self.stop()
            raise PublishError(f"consumer cannot start: {exc!r}") from exc
        except BaseException:  # cancelled while joining: close, don't leak
            await self.stop()
            raise

    async def next_batch(self, timeout_ms: int = 500, max_records: int = 500) -> ConsumedBatch:
        try:
            records = await self._started.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise PublishError(f"consume failed: {exc!r}") from exc
        consumed: list[ConsumedRecord] = []
        offsets: dict[LogPartition, int] = {}
        for partition, messages in records.items():
            for message in messages:
                offsets[LogPartition(partition.topic, partition.partition)] = message.offset + 1
                event: EventEnvelope | None = None
                error: str | None = None
                try:
                    if message.value is None:
                        raise ValueError("the record has no value")
                    event = decode(message.value)
                    carried = _trace_context(message.headers)
                    if carried:
                        event = replace(event, trace_context=carried)
                except Exception as exc:  # parked by the runner: must not stop the projector
                    error = f"{type(exc).__name__}: {exc}"
                consumed.append(
                    ConsumedRecord(
                        partition.topic,
                        partition.partition,
                        message.offset,
                        message.value,
                        event,
                        error,
                    )
                )
        return ConsumedBatch(consumed, offsets)

    async def commit(self, offsets: Mapping[LogPartition, int]) -> None:
        if not offsets:
            return
        try:
            await self._started.commit(
                {TopicPartition(p.topic, p.partition): offset for p, offset in offsets.items()}
            )
        except KafkaError as exc:
            # A rebalance took the partition away; the new owner re-applies
            # idempotently from the last committed offset.
            log.warning("offset commit failed: %r", exc)

    async def rewind(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        owned = consumer.assignment()
        try:
            if owned:  # (the next fetch reads from each partition's first offset)
                await consumer.seek_to_beginning(*owned)
        except KafkaError as exc:  # a rebalance took a partition: its new owner reads it
            log.warning("cannot rewind %s: %r", self.group_id, exc)

    async def lag(self) -> tuple[int, int] | None:
        """(position, lag) summed over the partitions this member owns; None when
        the broker does not answer (unknown — never a reassuring 0)."""
        consumer = self._started
        assigned = list(consumer.assignment())
        if not assigned:
            return 0, 0
        try:
            # Bounded: a broker that does not answer would hold the projector.
            async with asyncio.timeout(LAG_TIMEOUT_SECONDS):
                ends = await consumer.end_offsets(assigned)
                committed = [await consumer.committed(tp) or 0 for tp in assigned]
        except (KafkaError, OSError, TimeoutError):
            return None
        position = sum(committed)
        lag = sum(
            max(ends.get(tp, 0) - done, 0) for tp, done in zip(assigned, committed, strict=True)
        )
        return position, lag

    def joined(self) -> bool:
        """True once the group has given this member its partitions (possibly
        none, when the group has more members than partitions)."""
        consumer = self._consumer
        if consumer is None:
            return False
        if consumer.assignment():
            return True
        # aiokafka keeps the join's generation on its coordinator (-1 before).
        coordinator = getattr(consumer, "_coordinator", None)
        return int(getattr(coordinator, "generation", -1)) > 0

    async def progress(self) -> tuple[dict[str, int], dict[str, int]]:
        """(committed, end) offsets of the partitions this member owns, keyed "topic:partition"."""
        consumer = self._started
        assigned = list(consumer.assignment())
        if not assigned:
            return {}, {}
        try:
            ends = await consumer.end_offsets(assigned)
            committed = {_key(tp): await consumer.committed(tp) or 0 for tp in assigned}
        except KafkaError as exc:
            raise PublishError(f"cannot read offsets: {exc!r}") from exc
        return committed, {_key(tp): offset for tp, offset in ends.items()}

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            # Leaving the group is a courtesy: bounded, so a dead broker can't hang shutdown.
            try:
                await asyncio.wait_for(consumer.stop(), timeout=10)
            except (TimeoutError, KafkaError) as exc:
                log.warning("consumer did not stop cleanly: %r", exc)


def _trace_context(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The W3C trace context a record's headers carry (the first of each key);
    extracted here because the aiokafka instrumentation leaves none active
    after `getmany`."""
    found: dict[str, str] = {}
    for key, value in headers or ():
        if key in TRACE_HEADERS and key not in found and value:
            found[key] = value.decode("latin-1")
    return found


def _key(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"
