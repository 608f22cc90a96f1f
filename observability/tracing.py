"""Herald's OpenTelemetry traces: one tracer provider, the official
instrumentations, and the few manual spans where the design's story lives.

`configure_tracing(settings)` is called by `app.create_app` and `herald worker`.
The OpenTelemetry SDK's standard variables (declared in settings.py) choose:

- ``OTEL_TRACES_EXPORTER`` — where spans go: unset or ``none`` (Herald's
  default, unlike the SDK's): no provider is installed; the manual spans below
  are the API's no-op spans and nothing is instrumented, so tracing costs
  nothing; ``console``: spans printed to stdout; ``otlp``: batched to an
  OTLP/HTTP collector at ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default
  ``http://localhost:4318``; the exporter reads the other
  ``OTEL_EXPORTER_OTLP_*`` variables — headers, timeout, the traces-only
  endpoint — itself). ``HERALD_OTEL_EXPORTER`` is its deprecated alias, read
  only when it is unset (a warning says so);
- ``OTEL_SERVICE_NAME`` (default ``herald``) and ``OTEL_RESOURCE_ATTRIBUTES``:
  the resource of every span;
- ``OTEL_SDK_DISABLED=true``: nothing at all, whatever else is set.

Once a provider is installed it stays for the life of the process (OpenTelemetry
allows one global provider): a later call adds the exporter it names if it is not
there yet and changes nothing else, so calling it once per app — or once per test
— is safe. PyMongo and aiokafka are instrumented once, process-wide; the
Starlette app of each `create_app` is instrumented by `instrument_app`.

PyMongo's command listeners apply to clients created after they are registered:
`create_app(settings)` configures tracing before it builds its Services, so the
process entry gets its store traced; a caller that builds Services first gets
store spans only from clients created after the first configuration.

Manual spans:

- ``herald.command`` per command handler call (`traced_command`), with the
  command name, the aggregate id, the outcome and the correlation id; the same
  wrapper counts ``herald_commands_total`` and times ``herald_command_seconds``;
- ``herald.relay.batch`` per published outbox batch (commands/relay.py), a
  PRODUCER span linked to each event's stored context; each record's send
  (the aiokafka instrumentation's) is a child of its own event's context;
- ``herald.projection.batch`` per applied projector batch (projections/runner.py),
  a CONSUMER span linked to every record, and ``process <topic>`` per record,
  a child of the record's context (`processing`: why both is told there);
- ``herald.delivery.send`` per delivery attempt (delivery/worker.py), a child
  of the context the plan stored; beneath it ``smtp send`` (a CLIENT span of
  the e-mail channel), the push channel's httpx CLIENT span, or the SWIFT
  record's Kafka send;
- the GraphQL operation and resolver spans (queries.extensions.GraphQLSpans).

The trace goes through the outbox and Kafka as W3C Trace Context: see
"trace context through the outbox and Kafka" below.

Idle polling (the relay's lease and outbox query, the projectors' periodic lag
report) runs `untraced()`, and so do the probe routes (/metrics, /healthz,
/readyz): a quiet Herald sends no spans.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from importlib import metadata
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar
from urllib.parse import unquote

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from domain.errors import DomainError, Forbidden, NotFound, VersionConflict
from domain.events import EventEnvelope
from domain.validation import InvalidInput
from observability import metrics
from settings import OTEL_EXPORTERS, Settings, SettingsError

if TYPE_CHECKING:
    import httpx
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

SERVICE_NAME = "herald"
TRACER_NAME = "herald"

# Manual span names and attribute keys (the dashboards and tests read these).
COMMAND_SPAN = "herald.command"
RELAY_BATCH_SPAN = "herald.relay.batch"
PROJECTION_BATCH_SPAN = "herald.projection.batch"
ATTR_COMMAND = "herald.command.name"
ATTR_AGGREGATE_ID = "herald.command.aggregate_id"
ATTR_OUTCOME = "herald.command.outcome"
ATTR_CORRELATION_ID = "herald.correlation_id"
ATTR_ERROR_TYPE = "error.type"

# Routes polled by probes and scrapers: never traced.
UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})

_tracer = trace.get_tracer(TRACER_NAME)


# --- configuration -------------------------------------------------------------


class _State:
    def __init__(self) -> None:
        self.provider: TracerProvider | None = None
        self.exporter_kinds: set[str] = set()
        self.extra_exporters: list[SpanExporter] = []
        self.instrumented = False


_state = _State()
_lock = threading.Lock()


def configure_tracing(settings: Settings, *, exporter: SpanExporter | None = None) -> bool:
    """Install Herald's tracer provider and exporter; True when tracing is on.

    `exporter` adds one more exporter, exported synchronously (tests pass an
    in-memory one). Idempotent: see the module docstring.
    """
    if settings.otel_exporter not in OTEL_EXPORTERS:
        raise SettingsError(
            f"HERALD_OTEL_EXPORTER={settings.otel_exporter!r}: "
            f"expected one of {', '.join(OTEL_EXPORTERS)}"
        )
    if settings.otel_sdk_disabled:
        return _state.provider is not None
    kinds = settings.traces_exporters
    if settings.otel_traces_exporter is None and kinds:
        log.warning(
            "HERALD_OTEL_EXPORTER is deprecated: set OTEL_TRACES_EXPORTER=%s instead", kinds[0]
        )
    with _lock:
        if not kinds and exporter is None:
            return _state.provider is not None
        provider = _ensure_provider(settings)
        for kind in kinds:
            if kind in _state.exporter_kinds:
                continue
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(span_exporter(kind)))
            _state.exporter_kinds.add(kind)
            log.info("tracing: exporting spans to %s", kind)
        if exporter is not None and not any(e is exporter for e in _state.extra_exporters):
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor

            provider.add_span_processor(SimpleSpanProcessor(exporter))
            _state.extra_exporters.append(exporter)
        _instrument_libraries(provider)
        return True


def tracing_enabled() -> bool:
    """True once `configure_tracing` installed a provider in this process."""
    return _state.provider is not None


def _ensure_provider(settings: Settings) -> TracerProvider:
    if _state.provider is not None:
        return _state.provider
    from opentelemetry.sdk.trace import TracerProvider

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Someone (e.g. `opentelemetry-instrument`) installed an SDK provider
        # already: add to it rather than fight over the global.
        provider = current
    else:
        provider = TracerProvider(resource=resource(settings))
        trace.set_tracer_provider(provider)
    _state.provider = provider
    return provider


def resource(settings: Settings) -> Resource:
    """The resource of Herald's spans: service.name (OTEL_SERVICE_NAME,
    default herald), service.version, deployment.environment.name (HERALD_ENV),
    then OTEL_RESOURCE_ATTRIBUTES, which win over the defaults (but
    OTEL_SERVICE_NAME wins over a service.name in it, as the SDK spec says)."""
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, AttributeValue] = {
        "service.version": _herald_version(),
        "deployment.environment.name": settings.environment,
    }
    for pair in (settings.otel_resource_attributes or "").split(","):
        key, _, value = pair.partition("=")
        if key.strip():
            attributes[key.strip()] = unquote(value.strip())
    attributes["service.name"] = settings.otel_service_name
    # Resource.create adds the SDK's telemetry.sdk.* attributes
    return Resource.create(attributes)


def span_exporter(kind: str) -> SpanExporter:
    """A new exporter of a kind OTEL_TRACES_EXPORTER names (console or otlp)."""
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=SERVICE_NAME)
    if kind == "otlp":
        # reads OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise SettingsError(f"OTEL_TRACES_EXPORTER={kind!r}: no exporter")


def _instrument_libraries(provider: TracerProvider) -> None:
    if _state.instrumented:
        return
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    for instrumentor in (PymongoInstrumentor(), AIOKafkaInstrumentor()):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)
    _state.instrumented = True


def _herald_version() -> str:
    try:
        return metadata.version("herald")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- HTTP ----------------------------------------------------------------------


def instrument_http_client(client: httpx.AsyncClient) -> bool:
    """Give one httpx client (the push channel's) a CLIENT span per request,
    with the trace context in the request's headers, when tracing is on.
    One client, not httpx process-wide: a JWKS fetch or a test's client is
    not the story. The URL in the span is the instrumentation's redacted one
    (no credentials)."""
    provider = _state.provider
    if provider is None:
        return False
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    return True


def instrument_app(app: Starlette) -> bool:
    """Give the app a server span per request (Starlette instrumentation) when
    tracing is on; the probe routes run untraced. Call before the app starts."""
    if _state.provider is None:
        return False
    from opentelemetry.instrumentation.starlette import StarletteInstrumentor

    StarletteInstrumentor.instrument_app(app, tracer_provider=_state.provider)
    app.add_middleware(UntracedProbes)  # added last: outside the tracing middleware
    return True


class UntracedProbes:
    """Run the probe and scrape routes with instrumentation suppressed, so a
    Prometheus scrape or a readiness probe (and its store ping) makes no trace."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in UNTRACED_PATHS:
            with untraced():
                await self.app(scope, receive, send)
            return
        await self.app(scope, receive, send)


def set_correlation_id(correlation_id: str) -> None:
    """Put the request's correlation id on the current (server) span."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(ATTR_CORRELATION_ID, correlation_id)


# --- manual spans ----------------------------------------------------------------


def span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span]:
    """A span around a unit of Herald's own work (a relay or projector batch),
    or a CLIENT span around a call no instrumentation covers (SMTP); an
    exception escaping it is recorded and marks the span as failed."""
    return _tracer.start_as_current_span(name, kind=kind, attributes=attributes)


def client_span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> AbstractContextManager[Span]:
    """A CLIENT span around an outbound call no instrumentation covers (SMTP)."""
    return span(name, attributes, kind=SpanKind.CLIENT)


@contextmanager
def untraced() -> Iterator[None]:
    """Suppress the library instrumentations (store, Kafka, HTTP) inside."""
    if _state.provider is None:  # nothing is instrumented
        yield
        return
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def command_outcome(exc: BaseException) -> str:
    """The `outcome` label of a command that raised `exc`."""
    if isinstance(exc, InvalidInput):
        return "invalid"
    if isinstance(exc, VersionConflict):
        return "conflict"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, Forbidden):
        return "forbidden"
    if isinstance(exc, DomainError):
        return "rejected"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "error"


def traced_command(
    name: str, *, aggregate_arg: str | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Wrap a command handler: one ``herald.command`` span, one count in
    ``herald_commands_total{command, outcome}`` and one observation of
    ``herald_command_seconds{command}`` per call.

    The aggregate id comes from the argument named `aggregate_arg` when there is
    one, else from the result's consistency token (commands that create the
    aggregate); the correlation id from the `ctx` argument. Outcomes: accepted,
    invalid, conflict, not_found, forbidden, rejected (another business rule),
    cancelled, error (unexpected; the span's status is ERROR).
    """

    def decorate(
        func: Callable[P, Coroutine[Any, Any, R]],
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        signature = inspect.signature(func)

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            arguments = signature.bind_partial(*args, **kwargs).arguments
            attributes: dict[str, AttributeValue] = {ATTR_COMMAND: name}
            correlation_id = getattr(arguments.get("ctx"), "correlation_id", None)
            if isinstance(correlation_id, str) and correlation_id:
                attributes[ATTR_CORRELATION_ID] = correlation_id
            if aggregate_arg is not None and isinstance(arguments.get(aggregate_arg), str):
                attributes[ATTR_AGGREGATE_ID] = arguments[aggregate_arg]
            started = time.perf_counter()
            outcome = "error"
            with _tracer.start_as_current_span(
                COMMAND_SPAN,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as current:
                try:
                    result = await func(*args, **kwargs)
                    outcome = "accepted"
                    aggregate_id = getattr(getattr(result, "token", None), "aggregate_id", None)
                    if isinstance(aggregate_id, str):
                        current.set_attribute(ATTR_AGGREGATE_ID, aggregate_id)
                    return result
                except BaseException as exc:
                    outcome = command_outcome(exc)
                    current.set_attribute(ATTR_ERROR_TYPE, type(exc).__qualname__)
                    if outcome == "error":
                        current.record_exception(exc)
                        current.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
                    raise
                finally:
                    current.set_attribute(ATTR_OUTCOME, outcome)
                    metrics.COMMANDS.labels(name, outcome).inc()
                    metrics.COMMAND_SECONDS.labels(name).observe(time.perf_counter() - started)

        return wrapper

    return decorate


# --- trace context through the outbox and Kafka ------------------------------------
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
    "COMMAND_SPAN",
    "DELIVERY_SPAN",
    "PROJECTION_BATCH_SPAN",
    "RELAY_BATCH_SPAN",
    "TRACE_HEADERS",
    "UNTRACED_PATHS",
    "ConsumedEvent",
    "UntracedProbes",
    "client_span",
    "command_outcome",
    "configure_tracing",
    "continued",
    "current_trace_context",
    "delivering",
    "instrument_app",
    "instrument_http_client",
    "links_to",
    "processing",
    "producing",
    "relay_batch",
    "set_correlation_id",
    "span",
    "span_exporter",
    "trace_context_of",
    "traced_command",
    "tracing_enabled",
    "untraced",
]
