"""OTLP export: a real `assistant ask` sends GenAI metrics to a local OTLP/HTTP receiver."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from tests.conftest import installed_assistant, subprocess_env

metrics_service = pytest.importorskip(
    "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
    reason="the [otel] extra is not installed",
)


class OtlpReceiver:
    """Accepts POST /v1/metrics and decodes each ExportMetricsServiceRequest."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.path == "/v1/metrics":
                    request = metrics_service.ExportMetricsServiceRequest()
                    request.ParseFromString(body)
                    receiver.requests.append(request)
                answer = metrics_service.ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def metrics(self) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for request in self.requests:
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        found.setdefault(metric.name, []).append(metric)
        return found


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    yield otlp
    otlp.server.shutdown()
    otlp.server.server_close()


def attributes(point: Any) -> dict[str, str]:
    return {item.key: item.value.string_value for item in point.attributes}


def test_ask_exports_genai_metrics_over_otlp(receiver: OtlpReceiver) -> None:
    with StubLLMServer() as stub:
        stub.push_faults("500")  # one failed call: error.type on its duration point
        env = {
            "LLM_BASE_URL": stub.url,
            "LLM_API_KEY": "sk-otel-000000000000",
            "LLM_MAX_RETRIES": "0",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_SERVICE_NAME": "assistant-test",
        }
        for _ in range(2):
            subprocess.run(
                [installed_assistant(), "ask", "hello"],
                env=subprocess_env(**env),
                capture_output=True,
                timeout=60,
                check=False,
            )
    metrics = receiver.metrics()
    assert "gen_ai.client.operation.duration" in metrics
    assert "gen_ai.client.token.usage" in metrics
    assert "assistant_pipeline_runs_total" in metrics, "our own families travel too"
    durations = [
        p for m in metrics["gen_ai.client.operation.duration"] for p in m.histogram.data_points
    ]
    assert metrics["gen_ai.client.operation.duration"][0].unit == "s"
    seen = [attributes(p) for p in durations]
    assert all(a["gen_ai.operation.name"] == "chat" for a in seen)
    assert all(a["gen_ai.provider.name"] == "anthropic" for a in seen)
    assert any(
        a.get("error.type") == "ProviderUnavailable" or a.get("error.type") == "InternalServerError"
        for a in seen
    )
    assert list(durations[0].explicit_bounds)[:3] == [0.01, 0.02, 0.04]
    tokens = [
        attributes(p) for m in metrics["gen_ai.client.token.usage"] for p in m.histogram.data_points
    ]
    assert {a["gen_ai.token.type"] for a in tokens} == {"input", "output"}
    resource = {
        item.key: item.value.string_value
        for item in receiver.requests[0].resource_metrics[0].resource.attributes
    }
    assert resource["service.name"] == "assistant-test"
