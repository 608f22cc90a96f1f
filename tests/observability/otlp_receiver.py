"""An OTLP/HTTP receiver on loopback for the tests: every request it was
sent (path, content type, size) and every span in them, decoded with
opentelemetry-proto."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan


@dataclass(frozen=True)
class Received:
    service: str
    resource: dict[str, str]
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, str]


def _values(pairs: Any) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        value = pair.value
        kind = value.WhichOneof("value")
        found[pair.key] = str(getattr(value, kind)) if kind else ""
    return found


class OtlpReceiver(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, int]]] = []  # (path, content type, size)
    spans: ClassVar[list[Received]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.append((self.path, self.headers.get("Content-Type", ""), len(body)))
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = _values(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    assert isinstance(span, ProtoSpan)
                    self.spans.append(
                        Received(
                            service=resource.get("service.name", ""),
                            resource=resource,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes=_values(span.attributes),
                        )
                    )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, type[OtlpReceiver]]]:
    """A receiver on a free loopback port: its base URL and its handler class
    (whose `requests` and `spans` fill as exports arrive)."""
    handler = type("Receiver", (OtlpReceiver,), {"requests": [], "spans": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
