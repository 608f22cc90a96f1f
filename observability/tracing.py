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
- the GraphQL operation span (queries.extensions.GraphQLSpans).

The trace goes through the outbox and Kafka as W3C Trace Context: see
observability/trace_context.py (the relay, projector and delivery spans).

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
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from importlib import metadata
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from domain.commands import RequestCommand
from domain.errors import DomainError, Forbidden, NotFound, VersionConflict
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


def _answered_from_earlier(arguments: Mapping[str, Any]) -> bool:
    command = getattr(arguments.get("ctx"), "command", None)
    return isinstance(command, RequestCommand) and command.outcome.rebuilt


def traced_command(
    name: str, *, aggregate_arg: str | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Wrap a command handler: one ``herald.command`` span, one count in
    ``herald_commands_total{command, outcome}`` and one observation of
    ``herald_command_seconds{command}`` per call.

    The aggregate id comes from the argument named `aggregate_arg` when there is
    one, else from the result's consistency token (commands that create the
    aggregate); the correlation id from the `ctx` argument. Outcomes: accepted,
    replayed (a repeat under an Idempotency-Key answered from the event an
    earlier run of its command stored), invalid, conflict, not_found,
    forbidden, rejected (another business rule), cancelled, error
    (unexpected; the span's status is ERROR).
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
                    outcome = "replayed" if _answered_from_earlier(arguments) else "accepted"
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


__all__ = [
    "COMMAND_SPAN",
    "PROJECTION_BATCH_SPAN",
    "RELAY_BATCH_SPAN",
    "UNTRACED_PATHS",
    "UntracedProbes",
    "client_span",
    "command_outcome",
    "configure_tracing",
    "instrument_app",
    "instrument_http_client",
    "set_correlation_id",
    "span",
    "span_exporter",
    "traced_command",
    "tracing_enabled",
    "untraced",
]
