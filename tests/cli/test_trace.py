"""`herald trace ID` prints one trace of a `herald dev --traces` file (spans as
JSON lines) as an indented tree with durations — found by its trace id or by a
value a span carries (a correlation id, an action id)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind

from observability.trace_file import JsonLinesSpanExporter
from tests.support import HERALD


def record(path: Path) -> tuple[str, str]:
    """Two traces into `path`: an approval down to an SMTP send, and a
    projector batch linked to it; returns (the approval's trace id, the other's)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "herald-test"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /graphql", kind=SpanKind.SERVER) as server:
        server.set_attribute("herald.correlation_id", "corr-42")
        with tracer.start_as_current_span(
            "herald.command",
            attributes={"herald.command.name": "approve", "herald.command.aggregate_id": "CA-1"},
        ) as command:
            time.sleep(0.01)
        with (
            tracer.start_as_current_span("process t.corporate-actions", kind=SpanKind.CONSUMER),
            tracer.start_as_current_span("herald.delivery.send"),
            tracer.start_as_current_span("smtp send", kind=SpanKind.CLIENT),
        ):
            time.sleep(0.005)
    with tracer.start_as_current_span(
        "herald.projection.batch", links=[Link(command.get_span_context())]
    ) as batch:
        pass
    provider.shutdown()
    return (
        f"{server.get_span_context().trace_id:032x}",
        f"{batch.get_span_context().trace_id:032x}",
    )


def shape(line: str) -> tuple[str, str]:
    """(indented name, duration) of one printed span line."""
    indent = len(line) - len(line.lstrip(" "))
    name, duration, *_ = line.lstrip(" ").split("  ")
    return " " * indent + name, duration


def herald_trace(path: Path, wanted: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HERALD), "trace", wanted, "--file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_herald_trace_prints_the_tree_of_a_recorded_trace(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl"
    approval, other = record(path)
    lines = path.read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line)["traceId"] for line in lines)

    by_id = herald_trace(path, approval)
    assert by_id.returncode == 0, by_id.stderr
    printed = by_id.stdout.splitlines()
    assert printed[0].startswith(f"trace {approval}  5 spans  ")
    names = [shape(line)[0] for line in printed[1:]]
    assert names == [
        "POST /graphql",
        "  herald.command",
        "  process t.corporate-actions",
        "    herald.delivery.send",
        "      smtp send",
    ]
    assert "herald.projection.batch" not in by_id.stdout
    command_line = next(line for line in printed if "herald.command" in line)
    duration = float(shape(command_line)[1].removesuffix(" ms"))
    assert duration >= 10.0  # it slept 10 ms
    assert "herald.command.name=approve" in command_line
    assert "(herald-test server)" in printed[1]

    # by a correlation id or an action id a span carries: the same tree
    by_correlation = herald_trace(path, "corr-42")
    assert by_correlation.stdout == by_id.stdout
    assert herald_trace(path, "CA-1").stdout == by_id.stdout
    # the other trace, with its link counted
    linked = herald_trace(path, other)
    assert "herald.projection.batch" in linked.stdout and "links=1" in linked.stdout

    missing = herald_trace(path, "nothing-like-it")
    assert missing.returncode == 1
    assert "no trace" in missing.stderr
    absent = herald_trace(tmp_path / "none.jsonl", approval)
    assert absent.returncode == 66
