"""A local OTLP/HTTP receiver that decodes what it gets with the official protobuf
messages (``opentelemetry-proto``), and a blackhole that never answers.

Used by tests/test_otel.py and benchmarks/bench_otel.py. Loopback only.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _messages() -> dict[str, tuple[Any, Any]]:
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    return {
        "/v1/traces": (
            trace_service_pb2.ExportTraceServiceRequest,
            trace_service_pb2.ExportTraceServiceResponse,
        ),
        "/v1/metrics": (
            metrics_service_pb2.ExportMetricsServiceRequest,
            metrics_service_pb2.ExportMetricsServiceResponse,
        ),
        "/v1/logs": (
            logs_service_pb2.ExportLogsServiceRequest,
            logs_service_pb2.ExportLogsServiceResponse,
        ),
    }


def value_of(any_value: Any) -> Any:
    """A protobuf AnyValue as a Python value."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes_of(item: Any) -> dict[str, Any]:
    """The attributes of a span, event, data point, log record or resource."""
    return {kv.key: value_of(kv.value) for kv in item.attributes}


@dataclass
class SpanView:
    """One received span, decoded."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    status_code: int  # 0 unset, 1 ok, 2 error
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]


@dataclass
class Received:
    """Everything one receiver decoded, by signal."""

    traces: list[Any] = field(default_factory=list)
    metrics: list[Any] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)


class OtlpReceiver:
    """Accepts POST /v1/traces, /v1/metrics and /v1/logs, protobuf-encoded."""

    def __init__(self) -> None:
        self.received = Received()
        messages = _messages()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                encoding = (self.headers.get("content-encoding") or "").lower()
                if encoding == "gzip":  # a collector compresses (the SDK does not, by default)
                    body = gzip.decompress(body)
                elif encoding == "zstd":
                    self.send_response(415)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                request_type, response_type = messages.get(self.path, (None, None))
                if request_type is None or response_type is None:
                    self.send_response(404)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                request = request_type()
                request.ParseFromString(body)
                getattr(receiver.received, self.path.rsplit("/", 1)[1]).append(request)
                answer = response_type().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def spans(self) -> list[SpanView]:
        found = []
        for request in self.received.traces:
            for resource_spans in request.resource_spans:
                resource = attributes_of(resource_spans.resource)
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        found.append(
                            SpanView(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                kind=span.kind,
                                status_code=span.status.code,
                                attributes=attributes_of(span),
                                events=[(e.name, attributes_of(e)) for e in span.events],
                                resource=resource,
                            )
                        )
        return found

    def metrics(self) -> dict[str, list[Any]]:
        """Metric messages by name (one per export that carried it)."""
        found: dict[str, list[Any]] = {}
        for request in self.received.metrics:
            for resource_metrics in request.resource_metrics:
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        found.setdefault(metric.name, []).append(metric)
        return found

    def metric_resources(self) -> list[dict[str, Any]]:
        return [
            attributes_of(rm.resource)
            for request in self.received.metrics
            for rm in request.resource_metrics
        ]

    def log_records(self) -> Iterator[tuple[dict[str, Any], Any]]:
        """(resource attributes, LogRecord) for every record received."""
        for request in self.received.logs:
            for resource_logs in request.resource_logs:
                resource = attributes_of(resource_logs.resource)
                for scope in resource_logs.scope_logs:
                    for record in scope.log_records:
                        yield resource, record


class Blackhole:
    """A port that accepts TCP connections (the kernel's backlog) and never answers:
    what a firewall dropping packets, or a hung collector, looks like to a client."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)  # never accept()ed: requests sit unanswered
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def close(self) -> None:
        self.socket.close()


def refused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"
