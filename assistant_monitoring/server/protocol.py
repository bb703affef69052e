"""uvicorn's httptools protocol with the limits a server facing the network needs.

uvicorn parses HTTP with llhttp (Node's parser, through httptools): a body is read as
a body, duplicate or conflicting ``Content-Length`` and ``Transfer-Encoding`` are
refused, so no request hides inside another. What it does not bound, this subclass
does, in the fewest lines that reach each gap:

* the head of a request (request line and headers) must arrive within
  ``HEAD_TIMEOUT_SECONDS`` of its first byte, or of the connection, else 408: a
  slowloris client trickling one header a second holds nothing for long (uvicorn
  only times out idle keep-alive connections);
* the request line is at most 64 KiB (else 414) and the head at most 64 KiB (else
  431; counted as it arrives, not once whole), where llhttp has no limit;
* at most ``max_connections`` connections are open at once: the next one gets a
  503 and is closed (uvicorn's own ``limit_concurrency`` is not used: it answers 503
  to every request once the count is reached, including on the connections held);
* every error uvicorn would answer in plain text (400, 503) is JSON, like the rest
  of the API, and none is logged above DEBUG: a malformed request or a client that
  hangs up is the client's business, and under pm2 a log line per bad request is a
  flood.

Chosen over h11 (uvicorn's pure-Python parser, which has a head-size limit of its
own) because it serves more for less CPU: the same app at 50 connections, /live
1.47x and 1.85x h11's req/s in two runs, /api/runs 1.23x and 1.51x, 0.24 vs 0.38 ms
per request on one connection ("Issue 11" in BENCHMARKS.md). It leans on a few uvicorn internals
(``parser``, ``cycle``, ``_unset_keepalive_if_required``), so pyproject.toml pins
the uvicorn minor versions the tests in ``tests/test_serve_http.py`` ran against.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_SECONDS = 10.0
MAX_REQUEST_LINE_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
_LINGER_SECONDS = 2.0  # a refused connection is closed this long after its answer

_log = logging.getLogger("assistant_monitoring.server.http")

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class _HeadTooLarge(Exception):
    """Raised from a parser callback; httptools turns it into HttpParserCallbackError."""


def error_bytes(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 error response with a JSON body, closing the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _json_unavailable(scope: Any, receive: Any, send: Any) -> None:
    body = json.dumps({"error": "too many requests at once: try again shortly"}).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """One connection: uvicorn's protocol plus head deadline, head size and connection cap."""

    max_connections: int | None = None  # set by the server (MONITOR_MAX_CONNECTIONS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # between requests, or inside a request head
        self._head_bytes = 0  # received while in a head (whole reads: see data_received)
        self._parsed_bytes = 0  # the request line, then the headers, as parsed
        self._refusal: tuple[int, str] | None = None
        self._head_deadline: asyncio.TimerHandle | None = None
        self._refused = False

    # -- connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limit = self.max_connections
        if limit is not None and len(self.connections) > limit:
            _log.debug("connection refused: %d connections open (MONITOR_MAX_CONNECTIONS)", limit)
            self.connections.discard(self)  # a refused connection holds no place
            self._refuse(503, f"too many connections (at most {limit}): try again shortly")
            return
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        if exc is not None:
            _log.debug("client %s went away: %s", self.client, exc)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, with the deadline armed and our refusals instead of its 400.
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._head_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_head_deadline()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # As uvicorn does without a websocket library: the request is answered as
            # a plain HTTP/1.1 one, and the upgrade is ignored.
            _log.debug("ignored a protocol upgrade from %s", self.client)
        except httptools.HttpParserError as error:
            status, message = self._refusal or (400, f"malformed HTTP request ({error})")
            _log.debug("refused a request from %s: %s", self.client, message)
            self._refuse(status, message)
            return
        # httptools calls on_header only once a header line is whole, and buffers it
        # until then: a header that never ends is counted here, in whole reads (so a
        # head is refused within 64 KiB plus one read, at most 256 KiB, of its start).
        # A read that ends one request and begins the next counts whole too: only a
        # pipelined request with a body over 64 KiB could be refused by mistake, and
        # this API takes no bodies.
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                _log.debug("refused a request from %s: head over 64 KiB", self.client)
                self._refuse(431, "request headers over 64 KiB")

    # -- parser callbacks ---------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        if self._parsed_bytes > MAX_REQUEST_LINE_BYTES:
            self._refusal = (414, "request line over 64 KiB")
            raise _HeadTooLarge
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Whole headers, as parsed (a head that arrived in one read is checked here).
        self._parsed_bytes += len(name) + len(value) + 4
        if self._parsed_bytes > MAX_HEAD_BYTES:
            self._refusal = (431, "request headers over 64 KiB")
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        self._in_head, self._head_bytes = False, 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # uvicorn's answer when limit_concurrency is reached is plain text: ours is JSON.
        super()._start_asgi_task(cycle, _json_unavailable if app is service_unavailable else app)

    # -- helpers ------------------------------------------------------------------

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        _log.debug(
            "client %s sent no whole request head in %.0f s", self.client, HEAD_TIMEOUT_SECONDS
        )
        self._refuse(408, f"no complete request within {HEAD_TIMEOUT_SECONDS:.0f} s")

    def _refuse(self, status: int, message: str) -> None:
        # Answer, then stop sending and drop whatever else arrives: closing at once
        # would reset a connection whose request is still unread, and the client
        # would get the RST instead of the answer.
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self._disarm_head_deadline()
        if self.cycle is not None and not self.cycle.response_complete:
            # An answer is under way (a slow one, an event stream): it ends whole, then
            # uvicorn closes the connection; what came after it gets no answer.
            self.cycle.keep_alive = False
            return
        self.transport.write(error_bytes(status, message))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)
