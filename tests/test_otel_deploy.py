"""deploy/otel-collector: the collector config is whole and agrees with the app and
the other configs (no collector binary runs here: what can be checked is checked)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import REPO_ROOT

CONFIG = REPO_ROOT / "deploy" / "otel-collector" / "config.yaml"
KINDS = ("receivers", "processors", "exporters")


def collector() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return loaded


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return loaded


def port_of(endpoint: str) -> int:
    return int(endpoint.rstrip("/").rsplit(":", 1)[1].split("/")[0])


def test_every_pipeline_names_components_that_exist_and_all_are_used() -> None:
    config = collector()
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for name, pipeline in pipelines.items():
        for kind in KINDS:
            assert pipeline.get(kind), f"pipeline {name} has no {kind}"
            for component in pipeline[kind]:
                assert component in config[kind], f"{name} names {kind[:-1]} {component}"
                used[kind].add(component)
        assert pipeline["processors"][0] == "memory_limiter", "memory_limiter goes first"
    for kind in KINDS:
        assert used[kind] == set(config[kind]), f"unused {kind}"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]


def test_the_otlp_http_port_is_the_one_the_app_and_compose_use() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import DEFAULT_ENDPOINT

    receiver = collector()["receivers"]["otlp"]["protocols"]
    assert port_of(receiver["http"]["endpoint"]) == port_of(DEFAULT_ENDPOINT) == 4318
    assert port_of(receiver["grpc"]["endpoint"]) == 4317
    published = compose()["services"]["otel-collector"]["ports"]
    assert any(entry.endswith(":4318:4318") for entry in published)
    readme = (REPO_ROOT / "README.md").read_text()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318" in readme


def test_each_exporter_reaches_a_compose_service_on_its_port() -> None:
    config = collector()
    services = compose()["services"]
    traces = config["exporters"]["otlp/traces"]["endpoint"]
    logs = config["exporters"]["otlphttp/logs"]["endpoint"]
    assert traces.split(":")[0] in services
    assert logs.removeprefix("http://").split(":")[0] in services
    assert port_of(traces) == 4317  # Jaeger's (and Tempo's) OTLP/gRPC port
    assert logs.endswith("/otlp"), "Loki takes OTLP under /otlp"
    assert any(entry.endswith(":3100:3100") for entry in services["loki"]["ports"])
    for name in ("otel-collector", "jaeger", "loki"):
        assert services[name]["profiles"] == ["otel"], "opt-in: `--profile otel`"
    mounted = services["otel-collector"]["volumes"][0].split(":")[0]
    assert (REPO_ROOT / mounted).resolve() == CONFIG


def test_prometheus_scrapes_the_collectors_exporter_port() -> None:
    exporter = collector()["exporters"]["prometheus"]["endpoint"]
    prometheus = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "otel-collector"]
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert [port_of(target) for target in targets] == [port_of(exporter)]
    published = compose()["services"]["otel-collector"]["ports"]
    assert any(entry.endswith(f":{port_of(exporter)}:{port_of(exporter)}") for entry in published)
