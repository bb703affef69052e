"""Trace context without a collector: W3C traceparent parsing, span ids in logs,
the OTel names of our families, the OTLP log sink, and the bounded exit."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from loguru import logger

from assistant_monitoring.metrics import Instrumentation
from assistant_monitoring.tracing import SpanContext, Tracer, parse_traceparent, span

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"00-{TRACE}-{SPAN}-01", SpanContext(TRACE, SPAN, sampled=True, remote=True)),
        (f"00-{TRACE}-{SPAN}-00", SpanContext(TRACE, SPAN, sampled=False, remote=True)),
        (f" 00-{TRACE}-{SPAN}-03 ", SpanContext(TRACE, SPAN, sampled=True, remote=True)),
        # A later version may add fields; version 00 may not.
        (f"01-{TRACE}-{SPAN}-01-extra", SpanContext(TRACE, SPAN, sampled=True, remote=True)),
        (f"00-{TRACE}-{SPAN}-01-extra", None),
        (f"ff-{TRACE}-{SPAN}-01", None),
        (f"00-{'0' * 32}-{SPAN}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-{SPAN}-01", None),
        (f"00-{TRACE[:-1]}-{SPAN}-01", None),
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_traceparent(value: str | None, expected: SpanContext | None) -> None:
    assert parse_traceparent(value) == expected


def test_a_span_context_writes_back_as_traceparent() -> None:
    assert SpanContext(TRACE, SPAN).traceparent() == f"00-{TRACE}-{SPAN}-01"


def test_log_lines_inside_spans_carry_their_ids_and_nesting_keeps_the_trace() -> None:
    seen: list[dict[str, Any]] = []
    logger.remove()
    logger.add(lambda message: seen.append(dict(message.record["extra"])), level="DEBUG")
    tracer = Tracer()
    with span(tracer, "outer") as outer:
        logger.info("in outer")
        with span(tracer, "inner") as inner:
            logger.info("in inner")
    logger.info("outside")
    assert seen[0] == {"trace_id": outer.context.trace_id, "span_id": outer.context.span_id}
    assert seen[1]["span_id"] == inner.context.span_id
    assert inner.context.trace_id == outer.context.trace_id
    assert inner.context.span_id != outer.context.span_id
    assert seen[2] == {}


def prometheus_name(otel: Any, *, counter: bool) -> str:
    """What the collector's Prometheus exporter makes of an OTel name and unit (the
    translation rules of opentelemetry-collector-contrib's prometheus translator)."""
    name = otel.name.replace(".", "_")
    unit = "" if otel.unit.startswith("{") else otel.unit
    suffix = {"s": "seconds", "By": "bytes", "1": "" if counter else "ratio"}.get(unit, unit)
    if suffix and not name.endswith(f"_{suffix}"):
        name = f"{name}_{suffix}"
    return f"{name}_total" if counter and not name.endswith("_total") else name


def test_every_counter_and_gauge_family_has_a_chosen_otel_name() -> None:
    from assistant_monitoring.otel.names import OWN_FAMILIES, otel_name

    families = Instrumentation().registry.families()
    plain = {f.name for f in families if f.kind != "histogram"}
    assert plain == set(OWN_FAMILIES), "name new families on purpose in otel/names.py"
    for name in plain:
        otel = otel_name(name)
        assert not otel.name.endswith("_total")
        assert "." in otel.name
    for name in plain:  # back through a collector's Prometheus exporter, the same name
        kind = next(f.kind for f in families if f.name == name)
        assert prometheus_name(otel_name(name), counter=kind == "counter") == name
    assert otel_name("assistant_new_thing_seconds_total").name == "assistant.new_thing"
    assert otel_name("assistant_new_thing_seconds_total").unit == "s"


def test_semconv_opt_in_reads_the_standard_comma_list() -> None:
    from assistant_monitoring.otel.names import latest_experimental

    assert latest_experimental(
        {"OTEL_SEMCONV_STABILITY_OPT_IN": "http, gen_ai_latest_experimental"}
    )
    assert not latest_experimental({"OTEL_SEMCONV_STABILITY_OPT_IN": "http"})
    assert not latest_experimental({})


def test_signals_follow_the_standard_variables() -> None:
    from assistant_monitoring.otel import requested_signals

    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert requested_signals({}) == []
    assert requested_signals(endpoint) == ["traces", "metrics"]  # logs are opt-in
    assert requested_signals({**endpoint, "OTEL_LOGS_EXPORTER": "otlp"}) == [
        "traces",
        "metrics",
        "logs",
    ]
    assert requested_signals({**endpoint, "OTEL_TRACES_EXPORTER": "none"}) == ["metrics"]
    assert requested_signals({**endpoint, "OTEL_SDK_DISABLED": "true"}) == []
    only_traces = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}
    assert requested_signals(only_traces) == ["traces"]


def test_the_otlp_log_sink_keeps_severity_fields_and_trace_context() -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the [otel] extra is not installed")
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    from assistant_monitoring.otel.logs import OtelLogSink

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger.remove()
    logger.add(OtelLogSink(provider), level="DEBUG", format="{message}")
    with span(Tracer(), "run") as run:
        logger.bind(event="thing", count=3, nested={"a": 1}).warning("careful")
    logger.bind(stdlib_logger="opentelemetry.exporter").warning("export failed")
    logger.bind(stdlib_logger="urllib3.connectionpool").debug('"POST /v1/logs" 200')
    logger.error("token sk-ant-api03-" + "y" * 40)
    records = [item.log_record for item in exporter.get_finished_logs()]
    assert len(records) == 2, "what the export logs itself is not exported (a loop)"
    first, second = records
    assert first.severity_number.value == 13
    assert first.severity_text == "WARNING"
    assert first.body == "careful"
    assert first.attributes["event"] == "thing"
    assert first.attributes["count"] == 3
    assert first.attributes["nested"] == '{"a":1}'
    assert format(first.trace_id, "032x") == run.context.trace_id
    assert format(first.span_id, "016x") == run.context.span_id
    assert second.severity_number.value == 17
    assert "y" * 40 not in second.body
    assert not second.trace_id


def test_the_exit_waits_for_a_hung_export_only_as_long_as_its_budget() -> None:
    from assistant_monitoring.otel import OtelExport

    released = threading.Event()

    class HungProvider:
        def shutdown(self) -> None:
            released.wait(30)  # a collector that never answers

    export = OtelExport(exit_timeout=0.05)
    export.tracer_provider = HungProvider()
    export.meter_provider = HungProvider()
    started = time.monotonic()
    finished = export.shutdown()
    elapsed = time.monotonic() - started
    released.set()
    assert finished is False
    assert elapsed < 15, "it waited on the hung export"  # not a speed test: 30 s otherwise
