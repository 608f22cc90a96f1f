"""Trace context through the outbox and Kafka (W3C Trace Context,
https://www.w3.org/TR/trace-context/): a command stores the `traceparent` /
`tracestate` of the work that recorded it with each event, the relay sends
each record with its own event's context in Kafka headers of the same names,
and projectors, the dispatcher and the delivery workers continue it. The
spans follow OpenTelemetry's messaging semantic conventions (Kafka); the
tracer provider and the other spans are observability.tracing's."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from domain.events import EventEnvelope

if TYPE_CHECKING:
    pass

from observability.tracing import (
    ATTR_CORRELATION_ID,
    ATTR_ERROR_TYPE,
    PROJECTION_BATCH_SPAN,
    RELAY_BATCH_SPAN,
    _tracer,
)

log = logging.getLogger(__name__)

#
# W3C Trace Context (https://www.w3.org/TR/trace-context/) rides with each event:
# a command stores the `traceparent`/`tracestate` of the work that recorded it in
# the event's metadata (the store), the relay sends each record with its own
# event's context in the Kafka headers of the same names, and consumers continue
# it. Messaging spans follow OpenTelemetry's messaging semantic conventions (Kafka).

TRACE_HEADERS = ("traceparent", "tracestate")
DELIVERY_SPAN = "herald.delivery.send"
ATTR_PROJECTION = "herald.projection"

_w3c = TraceContextTextMapPropagator()


def current_trace_context() -> dict[str, str]:
    """The W3C `traceparent` (and `tracestate`, when set) of the current span,
    as a carrier to store with an event; {} outside any span. Only these two
    keys, whatever OTEL_PROPAGATORS says (baggage is not stored with events)."""
    carrier: dict[str, str] = {}
    _w3c.inject(carrier)
    return carrier


def trace_context_of(carrier: object) -> dict[str, str]:
    """The W3C keys of `carrier` (a stored event's metadata, a delivery's
    `traceContext`), dropping anything else; {} for None or a non-mapping."""
    if not isinstance(carrier, Mapping):
        return {}
    return {k: str(v) for k, v in carrier.items() if k in TRACE_HEADERS and v}


def _span_context(carrier: Mapping[str, str]) -> trace.SpanContext | None:
    if not carrier:
        return None
    found = trace.get_current_span(_w3c.extract(carrier)).get_span_context()
    return found if found.is_valid else None


@contextmanager
def continued(carrier: Mapping[str, str]) -> Iterator[None]:
    """Make the context in `carrier` (W3C keys) the current one inside, so the
    spans started there join that trace; nothing changes for an empty or
    malformed carrier (an event stored before traces were kept)."""
    if _span_context(carrier) is None:
        yield
        return
    token = otel_context.attach(_w3c.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def _kafka_instrumented() -> bool:
    # Asked of the instrumentor (a singleton), not of our own state: an
    # `opentelemetry-instrument` launcher may have instrumented aiokafka too.
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

    return bool(AIOKafkaInstrumentor().is_instrumented_by_opentelemetry)


@contextmanager
def producing(carrier: Mapping[str, str]) -> Iterator[list[tuple[str, bytes]]]:
    """Around one `producer.send` of an event whose stored context is
    `carrier`; yields the headers to add to the record.

    With the aiokafka instrumentation on, the context is made current: the
    instrumentation's PRODUCER span becomes a child of it and writes its own
    context into the headers (no header is added here, so a record never
    carries two `traceparent`). Otherwise the stored context is written as it is.
    """
    if _kafka_instrumented():
        with continued(carrier):
            yield []
        return
    yield [(key, value.encode()) for key, value in trace_context_of(carrier).items()]


def links_to(carriers: Sequence[Mapping[str, str]]) -> list[Link]:
    """One link per distinct valid context in `carriers`."""
    links: dict[tuple[int, int], Link] = {}
    for carrier in carriers:
        found = _span_context(carrier)
        if found is not None:
            links.setdefault((found.trace_id, found.span_id), Link(found))
    return list(links.values())


def relay_batch(events: Sequence[EventEnvelope]) -> AbstractContextManager[Span]:
    """The relay's span of one published outbox batch: a PRODUCER `send`
    batch span (messaging conventions) linked to each event's own context;
    each record's send span is a child of its event's context (`producing`)."""
    return _tracer.start_as_current_span(
        RELAY_BATCH_SPAN,
        kind=SpanKind.PRODUCER,
        links=links_to([e.trace_context for e in events]),
        attributes={
            "herald.relay.events": len(events),
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.batch.message_count": len(events),
        },
    )


class ConsumedEvent(Protocol):
    """One consumed record as `processing` reads it (adapters.kafka's ConsumedRecord)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def event(self) -> EventEnvelope | None: ...


@contextmanager
def processing(
    projection: str, group: str | None, records: Sequence[ConsumedEvent]
) -> Iterator[list[EventEnvelope]]:
    """Around a projector's application of one consumed batch; yields the
    batch's events to apply.

    Why both kinds of span: the projectors apply a batch at once (one
    transaction, bulk writes — per-record application would cost their
    throughput), which the conventions' batch span with links describes; but a
    link does not continue a trace, and the story of one approval is a single
    trace down to the e-mail. The per-record spans cost nothing when tracing
    is off (no span is made) and one span per record when it is on.

    Spans (OpenTelemetry messaging conventions, "process" operation): one
    CONSUMER batch span (``herald.projection.batch``, current inside, so the
    store calls lie beneath it) linked to every record's context, and one
    CONSUMER ``process <topic>`` span per record whose parent is the record's
    own context (its Kafka headers) — so each event's trace continues through
    the projector although the batch is applied at once. Each yielded event
    carries its record span's context as `trace_context`: what the projector
    derives from it (a NoticeIssued) continues the same trace. With tracing
    off the events are yielded as decoded.
    """
    events = [r.event for r in records if r.event is not None]
    common: dict[str, AttributeValue] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
    }
    if group:
        common["messaging.consumer.group.name"] = group
    with _tracer.start_as_current_span(
        PROJECTION_BATCH_SPAN,
        kind=SpanKind.CONSUMER,
        links=links_to([e.trace_context for e in events]),
        attributes={
            **common,
            ATTR_PROJECTION: projection,
            "herald.projection.events": len(events),
            "messaging.batch.message_count": len(events),
        },
    ) as batch:
        if not batch.is_recording():
            yield events
            return
        to_batch = [Link(batch.get_span_context())]
        spans: list[Span] = []
        continued_events: list[EventEnvelope] = []
        for record in records:
            event = record.event
            if event is None:
                continue
            parent = _span_context(event.trace_context)
            record_span = _tracer.start_span(
                f"process {record.topic}",
                context=None if parent is None else _w3c.extract(event.trace_context),
                kind=SpanKind.CONSUMER,
                links=to_batch,
                attributes={
                    **common,
                    ATTR_PROJECTION: projection,
                    "messaging.destination.name": record.topic,
                    "messaging.destination.partition.id": str(record.partition),
                    "messaging.kafka.offset": record.offset,
                    "messaging.kafka.message.key": event.aggregate_id,
                    "messaging.message.id": event.event_id,
                    "herald.event.type": event.event_name,
                    ATTR_CORRELATION_ID: event.correlation_id,
                },
            )
            spans.append(record_span)
            carrier: dict[str, str] = {}
            _w3c.inject(carrier, context=trace.set_span_in_context(record_span))
            continued_events.append(replace(event, trace_context=carrier))
        try:
            yield continued_events
        except BaseException as exc:
            for record_span in spans:
                record_span.set_attribute(ATTR_ERROR_TYPE, type(exc).__qualname__)
            raise
        finally:
            for record_span in spans:
                record_span.end()


def delivering(
    channel: str, carrier: object, attributes: Mapping[str, AttributeValue]
) -> AbstractContextManager[Span]:
    """The span of one delivery attempt on `channel`, a child of the context
    its plan stored (the dispatcher's record span of the NoticeIssued), so the
    send closes the trace the approval opened. Not current-context based: the
    channel workers run outside any request."""
    stored = trace_context_of(carrier)
    return _tracer.start_as_current_span(
        DELIVERY_SPAN,
        context=_w3c.extract(stored)
        if _span_context(stored) is not None
        else otel_context.Context(),
        attributes={"herald.delivery.channel": channel, **attributes},
    )


__all__ = [
    "DELIVERY_SPAN",
    "TRACE_HEADERS",
    "ConsumedEvent",
    "continued",
    "current_trace_context",
    "delivering",
    "links_to",
    "processing",
    "producing",
    "relay_batch",
    "trace_context_of",
]
