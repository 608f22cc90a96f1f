"""SWIFT for institutional accounts: each notice version as an ISO 15022 MT564
and an ISO 20022 message, published to `HERALD_SWIFT_TOPIC` (contract:
"Delivery to channels"; the bank's SWIFT gateway consumes the topic).

One delivery is two Kafka records, both keyed by the SEME (`seme_for(notice,
version)`, MT564 20C::SEME and seev.031 NtfctnId) with headers `format`
(`MT564`, or the ISO 20022 message: `seev.031.001.14`, `seev.039.001.12` for a
cancellation), `noticeId`, `version` and `messageId` (= the SEME).

Exactly once on the topic: a later attempt of a delivery (its first one's
outcome was lost to a crash of the worker, a timeout, or one of the two
records was acknowledged and the other not) first reads the topic from the
notice version's issue time and publishes only the formats not there yet
under its SEME. (Should that read miss a record in flight, the gateway can
still drop a repeat by (messageId, format): same key and headers.)

What a message says: the notice version's recorded content (the amounts the
depositor was shown, `IssuedNotice.content`) and the terms of the action
version it was issued for (`ca_version`), read back from the event store and
decoded as recorded (domain.history: history is never re-validated). The
sender is the depository's BIC (`HERALD_SWIFT_SENDER_BIC`), the receiver the
account's BIC from its preferences (`OutboundNotice.address`); the
preparation time (98C::PREP) is the version's issue time.

Linkage: an UPDATE (REPL) or CANCELLATION (CANC) names as PREV (MT564 A1
20C::PREV, seev.031 PrvsNtfctnId, seev.039 CxlRsn) the SEME of version − 1
of the same notice, the version it replaces: a notice version only exists
when what the depositor sees changed, so that is the message the receiver
holds — unless SWIFT was chosen for the account only after version − 1 went
out. The REPL/CANC then names a message the receiver never got; it still
restates every field, so it reads as the notice's current state.

Failures: the broker unreachable, slow (`request_timeout_ms`) or the event
store unavailable → TransientChannelError (retried); a notice that cannot be
rendered (a value MT564 cannot carry, the action's history gone or
undecodable) or a record the broker refuses for its size → PermanentChannelError
(dead-lettered at once). The topic is created on first use if missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from adapters.kafka.errors import refuses_record
from adapters.kafka.producer import started_producer, stop_quietly
from adapters.kafka.topics import ensure_topics
from domain import corporate_action as ca
from domain.delivery import OutboundNotice
from domain.ports import (
    EventStore,
    PermanentChannelError,
    PublishError,
    StoreError,
    TransientChannelError,
)
from domain.preferences import DeliveryChannel
from domain.swift import SwiftNotice, render_mt564, seme_for, swift_notice_from_content
from domain.terms import CorporateActionTerms

log = logging.getLogger(__name__)

MT564: Final = "MT564"
Headers = list[tuple[str, bytes]]
Render = Callable[[SwiftNotice], str]
_TERMS_CACHE: Final = 256  # (action, version) terms kept: they never change once recorded


def _format(headers: Sequence[tuple[str, bytes]]) -> bytes:
    return dict(headers).get("format", b"")


def _load_iso20022() -> tuple[Render, Render]:
    """The ISO 20022 renderer and message-name functions. Importing them loads
    python-iso20022 (~3 s): done on the first send, in a worker thread, so
    neither start-up nor the event loop waits for it."""
    from adapters.channels.iso20022 import iso20022_message, render_seev031

    return render_seev031, iso20022_message


class SwiftChannel:
    channel = DeliveryChannel.SWIFT

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        sender_bic: str,
        events: EventStore,
        *,
        idempotent: bool,
        partitions: int = 3,
        request_timeout_ms: int = 10_000,
    ) -> None:
        self._bootstrap = bootstrap
        self.topic = topic
        self._sender_bic = sender_bic
        self._events = events
        self._idempotent = idempotent
        self._partitions = partitions
        self._timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._topic_ready = False
        self._starting = asyncio.Lock()
        self._iso20022: tuple[Render, Render] | None = None
        self._terms: OrderedDict[tuple[str, int], CorporateActionTerms] = OrderedDict()

    def message_id(self, notice_id: str, version: int) -> str:
        return seme_for(notice_id, version)

    async def render(self, message: OutboundNotice) -> SwiftNotice:
        """The SwiftNotice of `message`. Raises PermanentChannelError when it
        cannot be rendered, TransientChannelError when the store is unavailable."""
        notice = message.notice
        terms = await self._terms_of(notice.corporate_action_id, notice.ca_version)
        try:
            return swift_notice_from_content(
                terms,
                notice.content,
                kind=notice.kind,
                notice_id=notice.notice_id,
                version=notice.version,
                corporate_action_id=notice.corporate_action_id,
                account_id=notice.account_id,
                sender_bic=self._sender_bic,
                receiver_bic=message.address,
                preparation_time=notice.issued_at,
            )
        except ValueError as exc:
            raise PermanentChannelError(f"cannot render as SWIFT: {exc}") from exc

    async def records(
        self, swift: SwiftNotice, message: OutboundNotice
    ) -> list[tuple[bytes, Headers]]:
        """The two record values (MT564 text, ISO 20022 XML; UTF-8) and their headers."""
        if self._iso20022 is None:
            self._iso20022 = await asyncio.to_thread(_load_iso20022)
        render_iso20022, iso20022_message = self._iso20022
        notice = message.notice

        def headers(form: str) -> Headers:
            return [
                ("format", form.encode()),
                ("noticeId", notice.notice_id.encode()),
                ("version", str(notice.version).encode()),
                ("messageId", swift.seme.encode()),
            ]

        return [
            (render_mt564(swift).encode(), headers(MT564)),
            (render_iso20022(swift).encode(), headers(iso20022_message(swift))),
        ]

    async def send(self, message: OutboundNotice) -> None:
        swift = await self.render(message)
        try:
            records = await self.records(swift, message)
        except Exception as exc:  # a SwiftNotice always renders: a bug, not worth retrying
            raise PermanentChannelError(f"cannot render as SWIFT: {exc!r}") from exc
        key = swift.seme.encode()
        try:
            # A backstop over aiokafka's own request timeout (metadata, acks).
            async with asyncio.timeout(3 * self._timeout_ms / 1000):
                producer = await self._started()
                if message.attempt > 1:
                    there = await self._published_or_none(key, message.notice.issued_at)
                    records = [(v, h) for v, h in records if _format(h) not in there]
                sent = [
                    await producer.send(self.topic, value=value, key=key, headers=headers)
                    for value, headers in records
                ]
                await asyncio.gather(*sent)
        except KafkaError as exc:
            if refuses_record(exc):
                raise PermanentChannelError(f"{self.topic} refuses the message: {exc!r}") from exc
            await self.close()
            raise TransientChannelError(f"publish to {self.topic}: {exc!r}") from exc
        except (PublishError, OSError, TimeoutError) as exc:
            await self.close()
            raise TransientChannelError(f"publish to {self.topic}: {exc!r}") from exc

    async def _published_or_none(self, key: bytes, since: datetime) -> set[bytes]:
        """`_published`, or nothing when the broker cannot answer it (e.g. no
        `offsets_for_times`): then both records go again, the gateway's
        (messageId, format) check the last line."""
        try:
            return await self._published(key, since)
        except KafkaError as exc:
            log.warning("%s: cannot read back %r (%r); re-publishing", self.topic, key, exc)
            return set()

    async def _published(self, key: bytes, since: datetime) -> set[bytes]:
        """The formats of the records keyed `key` on the topic, read from the
        first record at or after `since` (every partition, up to their ends now)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            request_timeout_ms=self._timeout_ms,
        )
        await consumer.start()
        try:
            producer = await self._started()
            partitions = [
                TopicPartition(self.topic, p)
                for p in sorted(await producer.partitions_for(self.topic))
            ]
            if not partitions:
                return set()
            consumer.assign(partitions)
            starts = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in partitions}
            )
            ends = await consumer.end_offsets(partitions)
            reading = []
            for tp in partitions:
                start = starts.get(tp)
                if start is not None and start.offset < ends[tp]:
                    consumer.seek(tp, start.offset)
                    reading.append(tp)
            formats: set[bytes] = set()
            while reading:
                for batch in (await consumer.getmany(*reading, timeout_ms=500)).values():
                    formats.update(_format(r.headers) for r in batch if r.key == key)
                reading = [tp for tp in reading if await consumer.position(tp) < ends[tp]]
            return formats
        finally:
            await consumer.stop()

    async def _terms_of(self, action_id: str, ca_version: int) -> CorporateActionTerms:
        key = (action_id, ca_version)
        cached = self._terms.get(key)
        if cached is not None:
            self._terms.move_to_end(key)
            return cached
        try:
            state = ca.replay(await self._events.load(action_id))
        except StoreError as exc:
            raise TransientChannelError(f"event store: {exc}") from exc
        except ValueError as exc:  # a stream the fold refuses: damaged history
            raise PermanentChannelError(f"corporate action {action_id}: {exc}") from exc
        if state is None or not 1 <= ca_version <= state.latest_version:
            raise PermanentChannelError(f"no version {ca_version} of corporate action {action_id}")
        terms = state.version(ca_version).terms  # as recorded
        self._terms[key] = terms
        if len(self._terms) > _TERMS_CACHE:
            self._terms.popitem(last=False)
        return terms

    async def _started(self) -> AIOKafkaProducer:
        async with self._starting:
            if not self._topic_ready:
                # Production brokers rarely auto-create topics: make sure ours exists.
                await ensure_topics(
                    self._bootstrap,
                    "",
                    self._partitions,
                    timeout=self._timeout_ms / 1000,
                    topics=[self.topic],
                )
                self._topic_ready = True
            if self._producer is None:
                self._producer = await started_producer(
                    self._bootstrap,
                    request_timeout_ms=self._timeout_ms,
                    idempotent=self._idempotent,
                )
            return self._producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        await stop_quietly(producer)
