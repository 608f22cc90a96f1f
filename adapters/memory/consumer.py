"""MemoryEventConsumer: the EventConsumer port over one in-memory partition,
for unit tests of the projection runner. `append` stands in for the relay
(a record as it would be read: its value and the envelope it decodes to, or
why it does not decode). Delivery restarts from the committed offset when the
member starts again, as a consumer group member's does."""

from __future__ import annotations

import json
from collections.abc import Mapping

from domain.events import EventEnvelope, to_json
from domain.ports import ConsumedBatch, ConsumedRecord, LogPartition

__all__ = ["MemoryEventConsumer"]


class MemoryEventConsumer:
    def __init__(self, topic: str = "events") -> None:
        self.partition = LogPartition(topic, 0)
        self.records: list[ConsumedRecord] = []
        self.committed = 0
        self._position = 0
        self._started = False

    def append(self, event: EventEnvelope) -> None:
        self.append_raw(json.dumps(to_json(event), sort_keys=True).encode(), event)

    def append_raw(
        self, value: bytes | None, event: EventEnvelope | None = None, error: str | None = None
    ) -> None:
        """A record as read; without an event it does not decode, for `error`."""
        topic, partition = self.partition
        offset = len(self.records)
        self.records.append(ConsumedRecord(topic, partition, offset, value, event, error))

    async def start(self) -> None:
        self._started = True
        self._position = self.committed

    async def next_batch(self, timeout_ms: int = 500, max_records: int = 500) -> ConsumedBatch:
        batch = self.records[self._position : self._position + max_records]
        self._position += len(batch)
        offsets = {self.partition: self._position} if batch else {}
        return ConsumedBatch(batch, offsets)

    async def commit(self, offsets: Mapping[LogPartition, int]) -> None:
        if self.partition in offsets:
            self.committed = max(self.committed, offsets[self.partition])

    async def lag(self) -> tuple[int, int] | None:
        return self.committed, len(self.records) - self.committed

    def joined(self) -> bool:
        return self._started

    async def progress(self) -> tuple[dict[str, int], dict[str, int]]:
        key = f"{self.partition.topic}:{self.partition.partition}"
        return {key: self.committed}, {key: len(self.records)}

    async def rewind(self) -> None:
        self._position = 0

    async def stop(self) -> None:
        self._started = False
