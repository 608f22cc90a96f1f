"""Traces: HERALD_OTEL_EXPORTER, the idempotent configuration, and the spans
a real Herald makes — one ``herald.command`` per command (name, aggregate id,
outcome, correlation id) inside the request's server span with its store calls
beneath, one ``herald.relay.batch`` per published batch linked to its events
(each Kafka send beneath its own event's command), one
``herald.projection.batch`` per projector batch — and none for a Prometheus
scrape."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from app import create_app
from observability import tracing
from settings import Settings, SettingsError
from tests.observability.conftest import ANNOUNCE
from tests.observability.otlp_receiver import otlp_receiver
from tests.support import DIVIDEND, GraphQLClient, RunningHerald

# --- settings and configuration -------------------------------------------------


def test_the_exporter_setting_is_validated() -> None:
    assert Settings.from_env({}).otel_exporter == "none"
    assert Settings.from_env({"HERALD_OTEL_EXPORTER": "OTLP"}).otel_exporter == "otlp"
    assert Settings.from_env({"HERALD_OTEL_EXPORTER": "console"}).otel_exporter == "console"
    with pytest.raises(SettingsError, match="HERALD_OTEL_EXPORTER='jaeger'"):
        Settings.from_env({"HERALD_OTEL_EXPORTER": "jaeger"})
    with pytest.raises(SettingsError, match="HERALD_OTEL_EXPORTER"):
        tracing.configure_tracing(Settings(otel_exporter="zipkin"))


def test_the_standard_opentelemetry_variables_choose_the_exporters() -> None:
    def exporters(**env: str) -> tuple[str, ...]:
        return Settings.from_env(env).traces_exporters

    assert exporters() == ()  # unset: nothing exported
    assert exporters(OTEL_TRACES_EXPORTER="otlp, Console") == ("otlp", "console")
    assert exporters(OTEL_TRACES_EXPORTER="none") == ()
    # the deprecated alias counts only while the standard variable is unset
    assert exporters(HERALD_OTEL_EXPORTER="console") == ("console",)
    assert exporters(HERALD_OTEL_EXPORTER="console", OTEL_TRACES_EXPORTER="none") == ()
    assert exporters(OTEL_TRACES_EXPORTER="otlp", OTEL_SDK_DISABLED="true") == ()
    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER='otlp,jaeger'"):
        Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp,jaeger"})
    with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_PROTOCOL='grpc'"):
        Settings.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(SettingsError, match="OTEL_RESOURCE_ATTRIBUTES"):
        Settings.from_env({"OTEL_RESOURCE_ATTRIBUTES": "team"})
    # a disabled SDK installs nothing (the provider of this session stays as it was)
    before = tracing.tracing_enabled()
    assert tracing.configure_tracing(Settings.from_env({"OTEL_SDK_DISABLED": "true"})) is before


def test_the_resource_follows_the_service_name_and_resource_attributes() -> None:
    settings = Settings.from_env(
        {
            "OTEL_SERVICE_NAME": "herald-api-1",
            "OTEL_RESOURCE_ATTRIBUTES": (
                "service.name=overridden,deployment.environment.name=prod,k8s.pod.name=api%2C1"
            ),
        }
    )
    attributes = tracing.resource(settings).attributes
    assert attributes["service.name"] == "herald-api-1"  # OTEL_SERVICE_NAME wins
    assert attributes["deployment.environment.name"] == "prod"
    assert attributes["k8s.pod.name"] == "api,1"
    assert attributes["telemetry.sdk.language"] == "python"
    default = tracing.resource(Settings()).attributes
    assert default["service.name"] == "herald"
    assert default["deployment.environment.name"] == "development"


def test_configuring_again_is_safe_and_adds_nothing_twice(
    spans: InMemorySpanExporter,
) -> None:
    assert tracing.configure_tracing(Settings(), exporter=spans)
    assert tracing.configure_tracing(Settings())  # what every create_app does
    create_app(Settings())  # builds (does not start) a second app in this process
    assert tracing.tracing_enabled()
    provider = trace.get_tracer_provider()
    assert provider.resource.attributes["service.name"] == "herald"  # type: ignore[attr-defined]
    marker = uuid.uuid4().hex
    with tracing.span("test.once", {"marker": marker}):
        pass
    exported = [s for s in spans.get_finished_spans() if s.attributes.get("marker") == marker]  # type: ignore[union-attr]
    assert len(exported) == 1


def test_the_console_exporter_is_the_sdks() -> None:
    assert isinstance(tracing.span_exporter("console"), ConsoleSpanExporter)


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, int]]]]:
    """A stand-in OTLP/HTTP collector on loopback: (path, content type, size) per request."""
    with otlp_receiver() as (url, handler):
        yield url, handler.requests


def test_the_otlp_exporter_posts_to_the_standard_endpoint(
    spans: InMemorySpanExporter,
    collector: tuple[str, list[tuple[str, str, int]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    with tracing.span("test.otlp"):
        pass
    [finished] = [s for s in spans.get_finished_spans() if s.name == "test.otlp"][-1:]
    exporter = tracing.span_exporter("otlp")
    try:
        assert exporter.export([finished]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    [(path, content_type, size)] = received
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert size > 0


# --- a real Herald --------------------------------------------------------------


async def wait_for_spans(
    exporter: InMemorySpanExporter,
    predicate: Callable[[ReadableSpan], bool],
    timeout: float = 15.0,
) -> list[ReadableSpan]:
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in exporter.get_finished_spans() if predicate(s)]
        if found:
            return found
        if time.monotonic() > deadline:
            names = sorted({s.name for s in exporter.get_finished_spans()})
            raise AssertionError(f"no such span after {timeout}s; span names seen: {names}")
        await asyncio.sleep(0.05)


def attr(span: ReadableSpan, key: str) -> object:
    return (span.attributes or {}).get(key)


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


async def announce(api: GraphQLClient, correlation_id: str, **overrides: object) -> str:
    operator = api.token("olga", "ca-operator")
    reference = f"RU-TRC-{uuid.uuid4().hex[:8]}"
    response = await api.http.post(
        "/graphql",
        json={
            "query": ANNOUNCE,
            "variables": {"input": {**DIVIDEND, "reference": reference, **overrides}},
        },
        headers={
            "Authorization": f"Bearer {operator}",
            "Idempotency-Key": uuid.uuid4().hex,
            "X-Correlation-Id": correlation_id,
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-correlation-id"] == correlation_id
    body = response.json()
    if body.get("errors"):
        return ""
    action_id: str = body["data"]["announceCorporateAction"]["corporateAction"]["id"]
    return action_id


async def test_a_command_makes_one_herald_command_span_inside_its_request(
    herald: RunningHerald, api: GraphQLClient, spans: InMemorySpanExporter
) -> None:
    correlation_id = f"obs-{uuid.uuid4().hex}"
    action_id = await announce(api, correlation_id)
    assert action_id

    def is_ours(span: ReadableSpan) -> bool:
        return (
            span.name == tracing.COMMAND_SPAN
            and attr(span, tracing.ATTR_CORRELATION_ID) == correlation_id
        )

    [command] = await wait_for_spans(spans, is_ours)
    assert attr(command, tracing.ATTR_COMMAND) == "announce"
    assert attr(command, tracing.ATTR_OUTCOME) == "accepted"
    assert attr(command, tracing.ATTR_AGGREGATE_ID) == action_id
    assert command.status.status_code is not StatusCode.ERROR

    # the server span of POST /graphql carries the correlation id too, and the
    # command span lies beneath it in the same trace
    assert command.context is not None
    trace_id = command.context.trace_id
    [server] = await wait_for_spans(
        spans,
        lambda s: (
            s.kind is SpanKind.SERVER and s.context is not None and s.context.trace_id == trace_id
        ),
    )
    assert server.name == "POST /graphql"
    assert attr(server, tracing.ATTR_CORRELATION_ID) == correlation_id
    in_trace = {
        s.context.span_id: s
        for s in spans.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id
    }
    assert server in ancestors(command, in_trace)
    # the event store's append is a PyMongo span beneath the command
    database = herald.settings.mongo_database
    store_calls = [
        s
        for s in in_trace.values()
        if s.name.startswith(f"{database}.") and command in ancestors(s, in_trace)
    ]
    assert store_calls, sorted(s.name for s in in_trace.values())


async def test_a_refused_command_is_traced_and_counted_with_its_outcome(
    api: GraphQLClient, spans: InMemorySpanExporter
) -> None:
    labels = {"command": "announce", "outcome": "invalid"}
    before = REGISTRY.get_sample_value("herald_commands_total", labels) or 0.0
    correlation_id = f"obs-{uuid.uuid4().hex}"
    assert await announce(api, correlation_id, isin="RU0009029541") == ""  # bad check digit

    [command] = await wait_for_spans(
        spans,
        lambda s: (
            s.name == tracing.COMMAND_SPAN
            and attr(s, tracing.ATTR_CORRELATION_ID) == correlation_id
        ),
    )
    assert attr(command, tracing.ATTR_COMMAND) == "announce"
    assert attr(command, tracing.ATTR_OUTCOME) == "invalid"
    assert attr(command, "error.type") == "InvalidInput"
    assert command.status.status_code is not StatusCode.ERROR  # refused, not failed
    assert REGISTRY.get_sample_value("herald_commands_total", labels) == before + 1


async def test_relay_and_projector_batches_are_spans(
    herald: RunningHerald, api: GraphQLClient, spans: InMemorySpanExporter
) -> None:
    action_id = await announce(api, f"obs-{uuid.uuid4().hex}")

    def sends_our_event(span: ReadableSpan) -> bool:
        return (
            span.kind is SpanKind.PRODUCER
            and attr(span, "messaging.kafka.message.key") == action_id
        )

    [send] = await wait_for_spans(spans, sends_our_event)
    # each record's send continues its own event's trace: a child of the command
    assert send.parent is not None
    [command] = await wait_for_spans(
        spans,
        lambda s: (
            s.name == tracing.COMMAND_SPAN and attr(s, tracing.ATTR_AGGREGATE_ID) == action_id
        ),
    )
    assert command.context is not None
    assert send.parent.span_id == command.context.span_id
    # the batch span (it also marks the events published) links to the events' contexts
    [batch] = await wait_for_spans(
        spans,
        lambda s: (
            s.name == tracing.RELAY_BATCH_SPAN
            and any(link.context.span_id == command.context.span_id for link in s.links)  # type: ignore[union-attr]
        ),
    )
    assert batch.kind is SpanKind.PRODUCER
    assert isinstance(attr(batch, "herald.relay.events"), int)
    assert attr(batch, "messaging.batch.message_count") == attr(batch, "herald.relay.events")
    assert str(attr(send, "messaging.destination.name")).startswith(
        herald.settings.kafka_topic_prefix
    )

    projected = await wait_for_spans(
        spans,
        lambda s: (
            s.name == tracing.PROJECTION_BATCH_SPAN and attr(s, "herald.projection") == "cards"
        ),
    )
    assert all(isinstance(attr(s, "herald.projection.events"), int) for s in projected)


async def test_a_scrape_or_a_probe_leaves_no_trace(
    api: GraphQLClient, spans: InMemorySpanExporter
) -> None:
    correlation_id = f"obs-{uuid.uuid4().hex}"
    for path in ("/metrics", "/readyz", "/healthz"):
        response = await api.http.get(path, headers={"X-Correlation-Id": correlation_id})
        assert response.status_code == 200
    await api.http.get("/graphql?query={__typename}", headers={"X-Correlation-Id": "after"})
    await wait_for_spans(spans, lambda s: attr(s, tracing.ATTR_CORRELATION_ID) == "after")
    assert not [
        s
        for s in spans.get_finished_spans()
        if attr(s, tracing.ATTR_CORRELATION_ID) == correlation_id
    ]
    assert not [s for s in spans.get_finished_spans() if s.name in {"GET /metrics", "GET /readyz"}]
