"""`monitor serve` against malformed, hostile and impatient clients, over raw sockets.

Each test runs the real installed CLI on a free loopback port (``serving``) and talks
bytes to it: request smuggling, conflicting lengths, oversized heads, slowloris,
resets mid-response, a connection flood, HEAD and wrong methods, negotiation and
gzip, the access log, SIGTERM with a request in flight, and the OpenAPI contract.
"""

from __future__ import annotations

import gzip
import json
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from assistant.stubllm import StubLLMServer
from assistant_monitoring.metrics.instrument import Instrumentation
from assistant_monitoring.metrics.registry import MetricsRegistry
from tests.conftest import (
    REPO_ROOT,
    flush_into_store,
    installed_assistant,
    make_healthy,
    run_assistant,
    subprocess_env,
)
from tests.test_serve import get, serving, start_server

STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")
GET_PATHS = [
    "/live",
    "/ready",
    "/health",
    "/metrics",
    "/api/metrics",
    "/api/runs",
    "/api/breakers",
    "/api/timeseries",
    "/api/usage",
    "/api/alerts",
    "/dashboard",
    "/static/uPlot.iife.min.js",
    "/openapi.json",
]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def exchange(port: int, data: bytes, *, quiet: float = 1.0) -> bytes:
    """Send ``data`` on a new connection; read until closed or ``quiet`` s of silence.

    A request that ends with ``Connection: close`` is read until the server closes,
    at once; silence is waited for only where what might still come is the point (a
    smuggled second answer, a stream)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.settimeout(quiet)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return received
            if not chunk:
                return received
            received += chunk


def log_records(data_dir: Path) -> list[dict[str, Any]]:
    text = (data_dir / "logs" / "assistant.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def statuses(raw: bytes) -> list[int]:
    return [int(code) for code in STATUS_LINE.findall(raw)]


def json_body(raw: bytes) -> Any:
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def test_a_body_is_never_run_as_a_second_request(data_dir: Path) -> None:
    hidden = b"GET /api/runs HTTP/1.1\r\nHost: x\r\n\r\n"
    smuggled = (
        b"GET /live HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(hidden)).encode()
        + b"\r\n\r\n"
        + hidden
    )
    with serving() as (url, _):
        raw = exchange(port_of(url), smuggled)
        assert statuses(raw) == [200], raw
        assert b'"runs"' not in raw
        # Pipelined requests (no body) are still each answered, in order.
        two = (
            b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert statuses(exchange(port_of(url), two)) == [200, 200]


@pytest.mark.parametrize(
    "head",
    [
        b"Content-Length: 5\r\nContent-Length: 6\r\n",  # conflicting lengths
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",  # CL.TE
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",  # TE.CL
        b"Content-Length: -1\r\n",
        b"Content-Length: 1e3\r\n",
    ],
    ids=["duplicate-length", "cl-te", "te-cl", "negative-length", "float-length"],
)
def test_ambiguous_lengths_are_refused_in_json(data_dir: Path, head: bytes) -> None:
    request = (
        b"GET /live HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n0\r\n\r\nGET /api/runs HTTP/1.1\r\n\r\n"
    )
    with serving() as (url, stderr):
        raw = exchange(port_of(url), request)
        assert statuses(raw) == [400], raw
        assert json_body(raw)["error"].startswith("malformed HTTP request")
        assert get(url + "/live")[0] == 200
    assert "Traceback" not in stderr[0]


def test_garbage_and_oversized_heads_get_json_4xx(data_dir: Path) -> None:
    with serving() as (url, stderr):
        port = port_of(url)
        raw = exchange(port, b"EHLO example.com\r\n\r\n")
        assert statuses(raw) == [400]
        assert "malformed HTTP request" in json_body(raw)["error"]
        raw = exchange(port, b"GET /live?" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
        assert statuses(raw) == [414]
        assert json_body(raw) == {"error": "request line over 8 KiB"}
        raw = exchange(port, b"GET /live HTTP/1.1\r\nX-Big: " + b"b" * 65 * 1024 + b"\r\n\r\n")
        assert statuses(raw) == [431]
        many = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 1000) for n in range(70))
        raw = exchange(port, b"GET /live HTTP/1.1\r\n" + many + b"\r\n")
        assert statuses(raw) == [431]
        raw = exchange(port, b"GET /live HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")
        assert statuses(raw) in ([200], [400]), raw  # never a hang nor a crash
        assert get(url + "/live")[0] == 200
    assert stderr[0].count("\n") <= 2, stderr[0]  # the start-up line, nothing per request


def test_a_header_that_never_ends_is_refused_as_it_grows(data_dir: Path) -> None:
    # httptools buffers a header until its line ends: counting whole headers only
    # let a client fill the server's memory with one endless header.
    with serving() as (url, _):
        sent, answer = 0, b""
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=10) as sock:
            sock.sendall(b"GET /live HTTP/1.1\r\nX-Endless: ")
            while sent < 8 * 1024 * 1024 and not answer:
                try:
                    sock.sendall(b"v" * 16384)
                except OSError:
                    break  # closed: the answer, if any, is read below
                sent += 16384
                time.sleep(0.001)  # let the server read what it was sent
                sock.setblocking(False)
                try:
                    answer = sock.recv(4096)
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
        assert answer.startswith(b"HTTP/1.1 431"), (sent, answer)
        assert sent < 1024 * 1024, f"{sent} bytes sent before the refusal"
        assert get(url + "/live")[0] == 200


def test_a_malformed_request_after_a_good_one_lets_the_first_be_answered(
    data_dir: Path,
) -> None:
    with serving() as (url, _):
        raw = exchange(port_of(url), b"GET /live HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n")
        assert statuses(raw) == [200], raw
        assert raw.endswith(b"}"), "the answer is whole, nothing written after it"


def test_head_everywhere_get_is_and_405_with_allow_elsewhere(data_dir: Path) -> None:
    with serving() as (url, _):
        port = port_of(url)
        for path in GET_PATHS:
            request = f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            raw = exchange(port, request.encode())
            head, _, body = raw.partition(b"\r\n\r\n")
            status = statuses(raw)
            assert status, (path, raw)
            assert status[0] in (200, 503), (path, raw)
            assert body == b"", f"HEAD {path} sent a body"
            length = re.search(rb"content-length: (\d+)", head)
            assert length, (path, head)
            assert int(length.group(1)) > 0, (path, head)
        raw = exchange(port, b"HEAD /api/alerts/stream HTTP/1.1\r\nHost: x\r\n\r\n", quiet=2)
        assert statuses(raw) == [200], raw
        assert raw.endswith(b"\r\n\r\n"), raw
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            raw = exchange(
                port,
                f"{method} /api/runs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
            )
            assert statuses(raw) == [405], (method, raw)
            allow = re.search(rb"allow: ([^\r]+)", raw)
            assert allow, raw
            assert set(allow.group(1).decode().split(", ")) == {"GET", "HEAD"}
            assert "not allowed" in json_body(raw)["error"]
        raw = exchange(port, b"BREW /live HTTP/1.1\r\n\r\n")
        assert statuses(raw) == [400], raw  # not an HTTP method at all


def test_negotiation_follows_prometheus_client_and_gzip_when_asked(data_dir: Path) -> None:
    inst = Instrumentation(MetricsRegistry())
    for _ in range(50):
        inst.metrics.pipeline_duration.observe(0.4)
    data_dir.mkdir(parents=True)
    flush_into_store(data_dir, inst)
    # What Prometheus 2.x sends: OpenMetrics preferred.
    prometheus_accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    with serving() as (url, _):
        _, headers, body = get(url + "/metrics", {"Accept": prometheus_accept})
        assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        assert body.endswith(b"# EOF\n")
        # A substring is not a media type (the old server chose OpenMetrics for this).
        _, headers, body = get(
            url + "/metrics", {"Accept": "text/html;x=application/openmetrics-text"}
        )
        assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert b"# EOF" not in body
        _, headers, zipped = get(url + "/metrics", {"Accept-Encoding": "br, gzip;q=0.8"})
        assert headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(zipped) == body
        assert len(zipped) < len(body) / 3
        for refusal in ("gzip;q=0", "gzip;level=1;q=0", "identity", "gzip;q=zero"):
            _, headers, plain = get(url + "/metrics", {"Accept-Encoding": refusal})
            assert headers.get("Content-Encoding") is None, refusal
            assert plain == body
        # The content type says what is sent, not what was asked for.
        newer = {"Accept": "application/openmetrics-text;version=2.0.0;escaping=allow-utf-8"}
        _, headers, _ = get(url + "/metrics", newer)
        assert headers["Content-Type"] == (
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )


def test_two_hundred_resets_mid_response_leave_stderr_quiet(data_dir: Path) -> None:
    inst = Instrumentation(MetricsRegistry())
    inst.metrics.pipeline_runs.labels("success").inc()
    data_dir.mkdir(parents=True)
    flush_into_store(data_dir, inst)
    with serving(LOG_LEVEL="DEBUG") as (url, stderr):
        port = port_of(url)
        paths = ["/metrics", "/api/metrics?period=30d", "/dashboard", "/openapi.json"]
        for number in range(200):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            path = paths[number % len(paths)]
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            if number % 2:
                sock.recv(10)  # the answer has begun
            # SO_LINGER 0: close() sends RST, not FIN, dropping what is unread.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        time.sleep(0.5)
        assert get(url + "/live")[0] == 200
    lines = [line for line in stderr[0].splitlines() if line.strip()]
    assert len(lines) < 10, stderr[0]
    assert "Traceback" not in stderr[0]
    records = log_records(data_dir)
    loud = [r for r in records if r["level"] in ("WARNING", "ERROR", "CRITICAL")]
    assert loud == [], loud[:3]
    assert not any("exception" in r for r in records)
    went_away = [r for r in records if "went away" in r["msg"]]
    assert len(went_away) <= 200
    assert all(r["level"] == "DEBUG" for r in went_away)


@pytest.mark.slow
def test_slowloris_sockets_do_not_stop_others_and_are_cut_off(data_dir: Path) -> None:
    with serving() as (url, _):
        port = port_of(url)
        slow = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(10)]
        for sock in slow:
            sock.sendall(b"GET /live HTTP/1.1\r\n")
        answered, refused = 0, 0
        started = time.monotonic()
        cut_off: set[int] = set()
        while time.monotonic() - started < 20:
            for number, sock in enumerate(slow):
                if number in cut_off:
                    continue
                try:
                    sock.sendall(b"X-a: b\r\n")  # one header a second, never the end
                except OSError:
                    cut_off.add(number)
            status, _, _ = get(url + "/live")
            answered += status == 200
            refused += status != 200
            time.sleep(1)
        for sock in slow:
            sock.settimeout(0.5)
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 408"):
                cut_off.add(slow.index(sock))
            sock.close()
        assert refused == 0, (answered, refused)
        assert answered >= 15, (answered, refused)
        assert len(cut_off) == 10, "every slow head is cut off after 10 s"


def test_a_full_house_of_silent_sockets_gives_way_to_new_clients(data_dir: Path) -> None:
    # Five places, five sockets that connected and said nothing: a new client takes
    # the place of the oldest (closed), and the server never holds more than five.
    with serving(MONITOR_MAX_CONNECTIONS="5") as (url, stderr):
        port = port_of(url)
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
        try:
            time.sleep(1.3)  # a silent socket gives way once it has held its place 1 s
            raw = exchange(port, b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert statuses(raw) == [200], raw
            held[0].settimeout(5)
            answer = held[0].recv(4096)  # a 503 saying why, then the close
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b"sent no request in time" in answer
            for sock in held[1:]:
                sock.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
            answered = sum(sock.recv(4096).startswith(b"HTTP/1.1 200") for sock in held[1:])
            assert answered == 4, "the others kept theirs"
        finally:
            for sock in held:
                sock.close()
    assert "Traceback" not in stderr[0]


def test_the_connection_cap_counts_connections_not_requests(data_dir: Path) -> None:
    # uvicorn's limit_concurrency answered 503 to every request once the count was
    # reached, on the connections it had let in too.
    with serving(MONITOR_MAX_CONNECTIONS="3") as (url, _):
        port = port_of(url)
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        time.sleep(0.2)
        assert statuses(
            exchange(port, b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        ) == [200]
        held[0].sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
        for sock in held:
            sock.close()


def test_bad_max_connections_is_a_settings_error(data_dir: Path) -> None:
    result = run_assistant(
        "monitor", "serve", "--port", "0", timeout=30, MONITOR_MAX_CONNECTIONS="0"
    )
    assert result.returncode == 2
    assert "MONITOR_MAX_CONNECTIONS" in result.stderr


def test_access_log_is_one_info_line_per_request_when_asked_without_secrets(data_dir: Path) -> None:
    token = "access-log-secret-123"
    with serving(MONITOR_ACCESS_LOG="true", MONITOR_TOKEN=token) as (url, _):
        headers = {"Authorization": f"Bearer {token}"}
        assert get(url + "/api/runs?limit=3", headers)[0] == 200
        stream = f"GET /api/alerts/stream?token={token}&x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        assert statuses(exchange(port_of(url), stream.encode())) == [200]
        # The same token under a percent-encoded name is the token too.
        encoded = f"GET /api/alerts/stream?%74oken={token} HTTP/1.1\r\nHost: x\r\n\r\n"
        assert statuses(exchange(port_of(url), encoded.encode())) == [200]
        assert get(url + "/nope", headers)[0] == 404
    records = log_records(data_dir)
    access = [r for r in records if "http_status" in r]
    runs = [r for r in access if r["http_path"] == "/api/runs"]
    assert len(runs) == 1
    assert runs[0]["level"] == "INFO"
    assert runs[0]["http_method"] == "GET"
    assert runs[0]["http_status"] == 200
    assert runs[0]["http_query"] == "limit=3"
    assert runs[0]["duration_ms"] >= 0
    assert any(r["http_path"] == "/nope" and r["http_status"] == 404 for r in access)
    streams = [r["http_query"] for r in access if r["http_path"] == "/api/alerts/stream"]
    assert streams == ["token=[REDACTED]&x=1", "token=[REDACTED]"]
    log_text = (data_dir / "logs" / "assistant.jsonl").read_text()
    assert token not in log_text


def test_a_request_cannot_forge_a_log_line(data_dir: Path) -> None:
    close = b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    forged = b"GET /live%0a12:00:00.000%20ERROR%20forged" + close
    query = b"GET /live?token=x%0aERROR%20forged&a=%0d%0a" + close
    with serving(MONITOR_ACCESS_LOG="true", LOG_CONSOLE_LEVEL="INFO") as (url, stderr):
        exchange(port_of(url), forged)
        exchange(port_of(url), query)
    records = [r for r in log_records(data_dir) if "http_status" in r]
    assert len(records) >= 2
    for record in records:
        assert "\n" not in record["msg"] + record["http_path"] + record["http_query"]
        assert "\r" not in record["http_query"]
    assert not [line for line in stderr[0].splitlines() if line.startswith("12:00:00.000")]
    assert not [line for line in stderr[0].splitlines() if line.startswith("ERROR")]


def test_the_access_log_keeps_a_bounded_part_of_a_huge_query(data_dir: Path) -> None:
    token = "access-log-secret-456"
    names = "&".join(f"n{number}=1" for number in range(900))  # ~6 KiB, under the 8 KiB line
    with serving(MONITOR_ACCESS_LOG="true", MONITOR_TOKEN=token) as (url, _):
        raw = exchange(
            port_of(url),
            f"GET /api/runs?{names} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        )
        assert statuses(raw) == [401]
        assert raw.count(b"www-authenticate: Bearer") == 1, raw
        late = (
            f"GET /api/alerts/stream?{names}&token={token} HTTP/1.1\r\n"
            "Host: x\r\nConnection: close\r\n\r\n"
        )
        assert statuses(exchange(port_of(url), late.encode())) == [401]  # over 32 fields
    records = [r for r in log_records(data_dir) if r.get("http_path", "/live") != "/live"]
    assert len(records) == 2
    for record in records:
        assert len(record["http_query"]) < 600, len(record["http_query"])
        assert record["http_query"].endswith(" bytes)")
    assert token not in (data_dir / "logs" / "assistant.jsonl").read_text()


def test_no_access_log_unless_asked_even_at_debug(data_dir: Path) -> None:
    # The development profile logs at DEBUG: a line per request there halved the
    # throughput, and under a flood it is a line per attacker's request.
    with serving(LOG_LEVEL="DEBUG") as (url, _):
        for _ in range(5):
            get(url + "/live")
    records = log_records(data_dir)
    assert not [r for r in records if "http_status" in r]
    assert [r for r in records if r["msg"].startswith("monitor stopped (")]


def test_sigterm_finishes_the_request_in_flight_flushes_and_exits_0(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StubLLMServer() as stub:
        make_healthy(data_dir, stub.url, monkeypatch, key="sk-test-0000000000000000")
        stub.plan.latency = 2.0  # the LLM health check takes 2 s
        # Only the flush at exit can write this process's metrics.
        process, url = start_server(MONITOR_FLUSH_INTERVAL="3600")
        port = port_of(url)
        answer: list[tuple[int, bytes]] = []
        probe = threading.Thread(target=lambda: answer.append(get(url + "/health")[::2]))
        probe.start()
        time.sleep(0.7)  # the health check is waiting on the LLM
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)  # no longer accepting
        probe.join(timeout=20)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert answer, "the request in flight was answered"
    assert answer[0][0] == 200, answer
    assert json.loads(answer[0][1])["status"] == "pass"
    assert "Traceback" not in stderr
    import sqlite3

    with sqlite3.connect(data_dir / "monitoring.db") as conn:
        families = {row[0] for row in conn.execute("SELECT DISTINCT family FROM series")}
    assert "assistant_health_status" in families, families


def _schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator({**schema, "components": document["components"]})


def test_openapi_is_valid_and_every_answer_matches_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from openapi_spec_validator import validate

    with StubLLMServer() as stub:
        make_healthy(data_dir, stub.url, monkeypatch, key="sk-test-0000000000000000")
        ask = subprocess.run(
            [installed_assistant(), "ask", "hello there"],
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ask.returncode == 0, ask.stderr
        with serving() as (url, _):
            status, _, body = get(url + "/openapi.json")
            assert status == 200
            document = json.loads(body)
            validate(document)
            committed = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
            assert committed == document, (
                "docs/openapi.json is out of date: "
                "python -m assistant_monitoring.server.openapi > docs/openapi.json"
            )
            assert document["openapi"].startswith("3.1")
            checked = 0
            for path, item in document["paths"].items():
                answer = item["get"]["responses"]["200"]["content"]
                if "application/json" not in answer:
                    continue
                status, _, body = get(url + path)
                assert status == 200, (path, body)
                schema = answer["application/json"]["schema"]
                _schema_validator(document, schema).validate(json.loads(body))
                checked += 1
            assert checked >= 6
            runs = json.loads(get(url + "/api/runs")[2])["runs"]
            assert runs, "a real run was checked against the schema"
            error = document["components"]["schemas"]["Error"]
            status, _, body = get(url + "/api/runs?limit=lots")
            assert status == 400
            _schema_validator(document, error).validate(json.loads(body))


def test_accepted_connections_have_nagle_off() -> None:
    """Head and body are separate writes: with Nagle on, every keep-alive answer after
    the first waits for the client's delayed ACK (~40 ms)."""
    import asyncio

    from assistant_monitoring.server.run import bind

    sock = bind("127.0.0.1", 0)
    seen: list[int] = []

    class Recorder(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one() -> None:
        server = await asyncio.get_running_loop().create_server(Recorder, sock=sock)
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(accept_one())
    assert seen == [1]


def test_ctrl_c_stops_cleanly_with_130(data_dir: Path) -> None:
    process, url = start_server()
    assert get(url + "/live")[0] == 200
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "KeyboardInterrupt" not in stderr
