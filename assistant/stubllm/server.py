"""A local HTTP server that speaks enough of the Anthropic and OpenAI APIs for their SDKs.

Point ``LLM_BASE_URL`` at it (the root or ``/v1``, both work) and the real anthropic
and openai SDKs work unchanged: plain and streamed replies, ``GET /v1/models``,
usage with cache tokens. It exists for tests and the demo, and it injects the faults
real providers produce:

* by rate: ``error_rate`` (share of requests answered 500), ``latency`` (seconds
  before every answer), ``stream_delay`` (seconds between streamed chunks);
* scripted, for the next requests: ``server.push_faults("429:2", "500")``, or
  ``POST /_stub/faults {"queue": [...]}`` when the server runs in another process;
* per request: an ``x-stub-fault`` header.

``usage`` (``server.plan.usage`` or ``POST /_stub/faults {"usage": {...}}``) replaces
fields of every answer's usage object with what a test needs (cache tiers, thinking
or reasoning tokens), in the API's own shape: for example ``{"anthropic":
{"cache_creation": {...}}, "openai": {"completion_tokens_details": {...}}}``.

Faults: ``429[:retry_after]``, ``500``, ``503``, ``529``, ``401``, ``drop`` (close the
connection without a response), ``malformed`` (200 with a broken JSON body),
``slow:SECONDS`` (wait, then answer normally).

Only loopback: it binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from assistant.stubllm import protocol

_ERROR_MESSAGES = {
    401: "invalid x-api-key",
    429: "rate limited by the stub",
    500: "internal error injected by the stub",
    503: "service unavailable (stub)",
    529: "overloaded (stub)",
}


@dataclass
class FaultPlan:
    """What the server does besides answering; changed at run time under ``lock``."""

    latency: float = 0.0
    stream_delay: float = 0.0
    error_rate: float = 0.0
    required_key: str | None = None
    any_model: bool = False
    queue: deque[str] = field(default_factory=deque)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)  # per API: fields to set
    rng: random.Random = field(default_factory=random.Random)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def scripted_fault(self, header: str | None) -> str | None:
        """A fault asked for explicitly: the request's header, else the queue."""
        if header:
            return header
        with self.lock:
            return self.queue.popleft() if self.queue else None

    def knows(self, model: object) -> bool:
        """Whether a real provider would serve ``model`` (a listed name, or a dated one)."""
        if self.any_model:
            return True
        name = str(model)
        base, _, suffix = name.rpartition("-")
        listed = {m for models in protocol.MODELS.values() for m in models}
        return name in listed or (base in listed and len(suffix) == 8 and suffix.isdigit())

    def random_fault(self) -> str | None:
        """A 500 for ``error_rate`` of the requests."""
        with self.lock:
            if self.error_rate and self.rng.random() < self.error_rate:
                return "500"
        return None


@dataclass
class RequestRecord:
    """One request the server saw (for tests to assert on)."""

    method: str
    path: str
    status: int
    api: str


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, every
    # request after the first on a kept-alive connection waited ~40 ms for an ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- routing ---------------------------------------------------------------

    def _route(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path[len("/v1") :] if path.startswith("/v1/") else path

    def _api(self) -> str:
        # Both SDKs call /v1/models; Anthropic's sends anthropic-version.
        return "anthropic" if self.headers.get("anthropic-version") else "openai"

    def do_GET(self) -> None:
        route = self._route()
        if route == "/_stub/stats":
            self._json(200, {"requests": len(self.server.records)})
            return
        if route == "/models":
            self._answer(
                lambda api: (
                    protocol.anthropic_models() if api == "anthropic" else protocol.openai_models()
                )
            )
            return
        self._json(404, {"error": {"message": f"unknown path {self.path}"}})

    def do_POST(self) -> None:
        route = self._route()
        body = self._read_body()
        if body is None:
            return
        if route == "/_stub/faults":
            self._configure(body)
            return
        if route == "/messages":
            self._answer(lambda _api: self._anthropic(body), api="anthropic", body=body)
            return
        if route == "/chat/completions":
            self._answer(lambda _api: self._openai(body), api="openai", body=body)
            return
        self._json(404, {"error": {"message": f"unknown path {self.path}"}})

    # -- answering -------------------------------------------------------------

    def _read_body(self) -> dict[str, Any] | None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(400, {"error": {"message": "request body is not JSON"}})
            return None
        return body if isinstance(body, dict) else {}

    def _key(self) -> str | None:
        key = self.headers.get("x-api-key")
        auth = self.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:]
        return key

    def _answer(
        self, build: Any, *, api: str | None = None, body: dict[str, Any] | None = None
    ) -> None:
        api = api or self._api()
        plan = self.server.plan
        if plan.latency:
            time.sleep(plan.latency)
        # Like a real provider: authentication first, then whatever goes wrong.
        fault = plan.scripted_fault(self.headers.get("x-stub-fault"))
        key = self._key()
        if fault is None and (not key or (plan.required_key and key != plan.required_key)):
            fault = "401"
        if fault is None and body is not None and not plan.knows(body.get("model")):
            # What both real APIs do for a model they do not have.
            message = f"model: {body.get('model')} not found (stub)"
            error = (
                protocol.anthropic_error(404, message)
                if api == "anthropic"
                else protocol.openai_error(404, message)
            )
            self._json(404, error, api=api)
            return
        if fault is None:
            fault = plan.random_fault()
        if fault is not None and self._inject(fault, api):
            return
        result = build(api)
        if isinstance(result, dict):
            self._json(200, result, api=api)
        else:
            self._stream(result, api)

    def _anthropic(self, body: dict[str, Any]) -> Any:
        usage = self.server.plan.usage.get("anthropic")
        return (
            protocol.anthropic_stream(body, usage)
            if body.get("stream")
            else protocol.anthropic_message(body, usage)
        )

    def _openai(self, body: dict[str, Any]) -> Any:
        usage = self.server.plan.usage.get("openai")
        return (
            protocol.openai_stream(body, usage)
            if body.get("stream")
            else protocol.openai_completion(body, usage)
        )

    def _inject(self, fault: str, api: str) -> bool:
        """Apply ``fault``; True when the request is answered (or dropped) by it."""
        name, _, argument = fault.partition(":")
        if name == "slow":
            time.sleep(float(argument or 5))
            return False
        if name == "drop":
            self.server.record(self.command, self.path, 0, api)
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may be gone already
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        if name == "malformed":
            self._raw(200, b'{"id": "broken", "content": [', "application/json", api)
            return True
        status = int(name)
        headers = {}
        if status == 429:
            headers["retry-after"] = argument or "1"
        message = _ERROR_MESSAGES.get(status, "error injected by the stub")
        error = (
            protocol.anthropic_error(status, message)
            if api == "anthropic"
            else protocol.openai_error(status, message)
        )
        self._json(status, error, api=api, headers=headers)
        return True

    def _configure(self, body: dict[str, Any]) -> None:
        plan = self.server.plan
        with plan.lock:
            for name in ("latency", "stream_delay", "error_rate"):
                if name in body:
                    setattr(plan, name, float(body[name]))
            if "queue" in body:
                plan.queue.extend(str(item) for item in body["queue"])
            if isinstance(body.get("usage"), dict):
                plan.usage = {str(api): dict(fields) for api, fields in body["usage"].items()}
        self._json(200, {"queued": len(plan.queue)})

    # -- writing ---------------------------------------------------------------

    def _json(
        self,
        status: int,
        data: dict[str, Any],
        *,
        api: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self._raw(status, json.dumps(data).encode(), "application/json", api, headers)

    def _raw(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        api: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.server.record(self.command, self.path, status, api)
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.send_header("request-id", f"req_stub_{random.getrandbits(48):012x}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, events: Any, api: str) -> None:
        self.server.record(self.command, self.path, 200, api)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        delay = self.server.plan.stream_delay
        try:
            for event in events:
                if delay:
                    time.sleep(delay)
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], plan: FaultPlan, verbose: bool) -> None:
        self.plan = plan
        self.verbose = verbose
        self.records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        super().__init__(address, _Handler)

    def record(self, method: str, path: str, status: int, api: str) -> None:
        with self._records_lock:
            self.records.append(RequestRecord(method, path, status, api))


class StubLLMServer:
    """The stub server; use as a context manager in tests, or :meth:`serve_forever`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency: float = 0.0,
        stream_delay: float = 0.0,
        error_rate: float = 0.0,
        required_key: str | None = None,
        any_model: bool = False,
        seed: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.plan = FaultPlan(
            latency=latency,
            stream_delay=stream_delay,
            error_rate=error_rate,
            required_key=required_key,
            any_model=any_model,
            rng=random.Random(seed),
        )
        self._server = _Server((host, port), self.plan, verbose)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:8089``."""
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered so far."""
        return list(self._server.records)

    def push_faults(self, *faults: str) -> None:
        """Answer the next requests with these faults, in order."""
        with self.plan.lock:
            self.plan.queue.extend(faults)

    def start(self) -> StubLLMServer:
        """Serve from a background thread."""
        # stop() waits for the loop to look at its shutdown flag: every 50 ms, not
        # socketserver's 0.5 s (each test with a stub paid that on teardown).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stub-llm",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until :meth:`stop` (or a signal ends the process)."""
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StubLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
