"""Traces for a newcomer, without a tracing backend: spans as JSON lines in a
file (`herald dev --traces FILE`), and one trace printed back as an indented
tree with durations (`herald trace ID`).

One line per finished span, in the OTLP/JSON spirit but flat::

    {"traceId": "4bf9…", "spanId": "00f0…", "parentSpanId": "…" | null,
     "name": "POST /graphql", "kind": "SERVER", "service": "herald",
     "start": 1764490000123456789, "end": 1764490000223456789,   # ns since the epoch
     "status": "UNSET" | "OK" | "ERROR", "attributes": {…},
     "links": [{"traceId": "…", "spanId": "…"}]}

`herald trace ID` takes a trace id (32 hex digits), or any attribute value a
span of the file carries — a correlation id, an action id (the command's
`herald.command.aggregate_id`), a notice id — and prints every trace holding
such a span, oldest first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

# Attributes worth a glance in the tree, in this order (the rest stay in the file).
SHOWN = (
    "herald.command.name",
    "herald.command.outcome",
    "herald.command.aggregate_id",
    "herald.projection",
    "herald.event.type",
    "herald.delivery.channel",
    "herald.notice.id",
    "graphql.operation.name",
    "messaging.batch.message_count",
    "http.status_code",
    "http.response.status_code",
    "db.mongodb.collection",
    "error.type",
)


def to_json(span: ReadableSpan) -> dict[str, Any]:
    """The JSON line of one finished span (see the module docstring)."""
    context = span.context
    assert context is not None, "a finished SDK span has a context"
    return {
        "traceId": f"{context.trace_id:032x}",
        "spanId": f"{context.span_id:016x}",
        "parentSpanId": None if span.parent is None else f"{span.parent.span_id:016x}",
        "name": span.name,
        "kind": span.kind.name,
        "service": str(span.resource.attributes.get("service.name", "")),
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "links": [
            {"traceId": f"{link.context.trace_id:032x}", "spanId": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to `path` as one JSON line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(to_json(s), separators=(",", ":")) + "\n" for s in spans)
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


@dataclass
class Node:
    span: dict[str, Any]
    children: list[Node] = field(default_factory=list)

    @property
    def start(self) -> int:
        return int(self.span.get("start") or 0)

    @property
    def millis(self) -> float:
        return (int(self.span.get("end") or 0) - self.start) / 1e6


def read(path: Path) -> list[dict[str, Any]]:
    """The spans of a JSON-lines file; lines that do not parse are skipped
    (a line being written while we read)."""
    spans = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                span = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(span, dict) and "traceId" in span and "spanId" in span:
                spans.append(span)
    return spans


def matching_traces(spans: Iterable[dict[str, Any]], wanted: str) -> list[str]:
    """Trace ids of `wanted`: itself when a span has that trace id, else every
    trace with a span carrying `wanted` as an attribute value; oldest first."""
    spans = list(spans)
    wanted_lower = wanted.strip().lower()
    if any(s["traceId"] == wanted_lower for s in spans):
        return [wanted_lower]
    first_seen: dict[str, int] = {}
    for span in spans:
        if any(str(value) == wanted for value in (span.get("attributes") or {}).values()):
            start = int(span.get("start") or 0)
            trace_id = span["traceId"]
            first_seen[trace_id] = min(first_seen.get(trace_id, start), start)
    return sorted(first_seen, key=lambda t: first_seen[t])


def tree(spans: Iterable[dict[str, Any]], trace_id: str) -> list[Node]:
    """The roots of one trace (spans whose parent is not in it), each with its
    children, ordered by start time."""
    nodes = {s["spanId"]: Node(s) for s in spans if s["traceId"] == trace_id}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.span.get("parentSpanId") or "")
        (parent.children if parent is not None else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: n.start)
    return sorted(roots, key=lambda n: n.start)


def render(roots: Sequence[Node], trace_id: str) -> Iterator[str]:
    """The lines of one trace: a heading, then one line per span, indented
    two spaces per level: name, duration in ms, service, kind, a few attributes."""
    count = sum(1 for _ in _walk(roots, 0))
    if roots:
        begin = min(n.start for n in roots)
        end = max(int(n.span.get("end") or 0) for _, n in _walk(roots, 0))
        yield f"trace {trace_id}  {count} spans  {(end - begin) / 1e6:.1f} ms"
    else:
        yield f"trace {trace_id}  no spans"
    for depth, node in _walk(roots, 0):
        span = node.span
        attributes = span.get("attributes") or {}
        shown = [f"{key}={attributes[key]}" for key in SHOWN if key in attributes]
        if span.get("status") == "ERROR":
            shown.insert(0, "ERROR")
        if span.get("links"):
            shown.append(f"links={len(span['links'])}")
        details = f"  [{', '.join(shown)}]" if shown else ""
        kind = span.get("kind", "")
        kind_shown = "" if kind in ("INTERNAL", "") else f" {kind.lower()}"
        yield (
            f"{'  ' * depth}{span['name']}  {node.millis:.1f} ms"
            f"  ({span.get('service', '')}{kind_shown}){details}"
        )


def _walk(nodes: Sequence[Node], depth: int) -> Iterator[tuple[int, Node]]:
    for node in nodes:
        yield depth, node
        yield from _walk(node.children, depth + 1)


__all__ = [
    "JsonLinesSpanExporter",
    "Node",
    "matching_traces",
    "read",
    "render",
    "to_json",
    "tree",
]
