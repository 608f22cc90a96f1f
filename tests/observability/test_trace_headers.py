"""Each Kafka record carries its own event's W3C trace context in its headers,
on a real broker (Tansu): as stored when the aiokafka instrumentation is off (a
relay process without tracing still passes the context on), through the
instrumentation's send span — a child of it, one `traceparent` only — when it
is on; a consumer reads it back into the envelope."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters.kafka.consumer import KafkaEventConsumer
from adapters.kafka.publisher import KafkaEventPublisher
from adapters.kafka.topics import ensure_topics, topic_for
from domain.events import AGGREGATE_CORPORATE_ACTION, EventEnvelope
from observability import trace_context
from tests.support import Broker

STORED = {
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=value",
}


def event(aggregate_id: str) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.uuid4().hex,
        event_name="CorporateActionAnnounced",
        aggregate_type=AGGREGATE_CORPORATE_ACTION,
        aggregate_id=aggregate_id,
        version=1,
        occurred_at=datetime(2026, 11, 30, tzinfo=UTC),
        actor="olga",
        correlation_id="c",
        trace_context=STORED,
    )


@pytest.fixture(params=[False, True], ids=["uninstrumented", "instrumented"])
def instrumented(request: pytest.FixtureRequest, spans: InMemorySpanExporter) -> Iterator[bool]:
    """Whether aiokafka is instrumented (it is, process-wide, once tracing is
    configured): taken off for the first case, and put back."""
    instrumentor = AIOKafkaInstrumentor()
    if request.param:
        yield True
        return
    instrumentor.uninstrument()
    try:
        yield False
    finally:
        instrumentor.instrument(tracer_provider=trace.get_tracer_provider())


async def test_a_record_carries_its_own_events_trace_context(
    spans: InMemorySpanExporter, tansu_broker: Broker, instrumented: bool
) -> None:
    assert trace_context._kafka_instrumented() is instrumented
    prefix = f"h{uuid.uuid4().hex[:8]}"
    await ensure_topics(tansu_broker.bootstrap, prefix, 1)
    publisher = KafkaEventPublisher(tansu_broker.bootstrap, prefix, idempotent=False)
    sent = event(f"CA-{uuid.uuid4().hex[:8]}")
    untraced = replace(event(f"CA-{uuid.uuid4().hex[:8]}"), trace_context={})
    try:
        await publisher.publish([sent, untraced])
    finally:
        await publisher.close()
    consumer = KafkaEventConsumer(
        tansu_broker.bootstrap,
        f"{prefix}.test",
        [topic_for(prefix, AGGREGATE_CORPORATE_ACTION)],
        session_timeout_ms=6000,
    )
    await consumer.start()
    try:
        received: dict[str, EventEnvelope] = {}
        async with asyncio.timeout(30):
            while len(received) < 2:
                batch = await consumer.next_batch()
                received.update({e.event_id: e for e in batch.events})
    finally:
        await consumer.stop()
    carried = received[sent.event_id].trace_context
    if not instrumented:
        assert carried == STORED
        assert received[untraced.event_id].trace_context == {}
        return
    # the send span is the stored context's child, and its context is what travels
    _, trace_id, parent_id, _ = STORED["traceparent"].split("-")
    [send] = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.PRODUCER
        and (s.attributes or {}).get("messaging.kafka.message.key") == sent.aggregate_id
    ]
    assert send.context is not None and send.parent is not None
    assert f"{send.parent.span_id:016x}" == parent_id
    assert f"{send.context.trace_id:032x}" == trace_id
    assert carried["traceparent"] == f"00-{trace_id}-{send.context.span_id:016x}-01"
    assert carried["tracestate"] == "vendor=value"
