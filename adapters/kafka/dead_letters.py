"""KafkaDeadLetterTopic: the event log's copy of the records a projector parked.

The record's own value goes out unchanged on `<prefix>.deadletter.<name>`,
keyed by aggregate id, with the dead letter's facts in headers (the
convention of Kafka Connect's dead-letter queues), so any Kafka tool can read
or re-drive it. The durable, queryable record is the store's `dead_letters`.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from adapters.kafka.errors import refuses_record
from adapters.kafka.producer import started_producer, stop_quietly
from domain.dead_letters import DeadLetter
from domain.ports import PublishError

log = logging.getLogger(__name__)


def dead_letter_topic(prefix: str, name: str) -> str:
    """`<prefix>.deadletter.<name>` (a name such as "cards" or "notices")."""
    return f"{prefix}.deadletter.{name}"


class KafkaDeadLetterTopic:
    def __init__(self, bootstrap: str, topic: str, *, request_timeout_ms: int = 10_000) -> None:
        self._bootstrap = bootstrap
        self.topic = topic
        self._timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None

    async def send(self, letter: DeadLetter, value: bytes | None) -> None:
        """Publish the parked record; PublishError when the broker is unreachable.

        A record the broker refuses here too is only logged: the store keeps
        the letter, and one refusal must not hold the partition.
        """
        headers = [
            ("deadLetterId", letter.id),
            ("source", letter.source),
            ("kind", letter.kind),
            ("reason", letter.reason),
            ("topic", letter.topic or ""),
            ("partition", "" if letter.partition is None else str(letter.partition)),
            ("offset", "" if letter.offset is None else str(letter.offset)),
            ("eventId", letter.event_id or ""),
        ]
        try:
            if self._producer is None:
                self._producer = await started_producer(
                    self._bootstrap, request_timeout_ms=self._timeout_ms
                )
            await self._producer.send_and_wait(
                self.topic,
                value=value,
                key=None if letter.aggregate_id is None else letter.aggregate_id.encode(),
                headers=[(name, text.encode()) for name, text in headers],
            )
        except KafkaError as exc:
            if refuses_record(exc):
                log.warning("dead-letter topic %s refuses %s: %r", self.topic, letter.id, exc)
                return
            await self.close()
            raise PublishError(f"dead-letter publish to {self.topic} failed: {exc!r}") from exc
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise PublishError(f"dead-letter publish to {self.topic} failed: {exc!r}") from exc

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        await stop_quietly(producer)
