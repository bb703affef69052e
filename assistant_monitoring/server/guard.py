"""The connection guard: what ``monitor serve`` bounds before uvicorn sees a byte.

uvicorn parses HTTP with llhttp (Node's parser, through httptools): a body is read as
a body, duplicate or conflicting ``Content-Length`` and ``Transfer-Encoding`` are
refused, so no request hides inside another. It does not bound how long a request
head may take, how large it may grow, how many connections are open, nor how long a
client may take to read an answer. This module does, through documented seams only:
uvicorn's ``Config(http=...)`` takes any ``asyncio.Protocol`` class, and
:class:`GuardedConnection` is one that wraps uvicorn's own httptools protocol,
speaking to it and to the transport only through the ``asyncio.Protocol`` and
``asyncio.Transport`` interfaces. A second httptools parser (public API; about a
microsecond a request) follows the request boundaries:

* the head (request line and headers) must arrive within ``HEAD_TIMEOUT_SECONDS`` of
  its first byte, or of the connection, else 408: a slowloris client trickling one
  header a second holds nothing for long;
* the request line is at most 8 KiB (else 414) and the head at most 64 KiB (else 431;
  counted as it arrives, not once whole), where llhttp has no limit;
* at most ``max_connections`` connections (MONITOR_MAX_CONNECTIONS) are open at once.
  When the cap is full, a new connection takes the place of the one that does least:
  a head still arriving (oldest first), then an idle keep-alive connection, then a
  reader that has not taken its answer for a second (longest first). Only when every
  connection is busy with a request does a new one go to the reserve: a few more
  places where only ``/live`` and ``/ready`` are answered, within 2 s, so that a
  probe always gets through (:class:`ConnectionBook`). Past that it is answered 503;
* a reader that takes nothing for ``SEND_TIMEOUT_SECONDS`` while its answer waits
  (the transport paused writing) is cut off, at most ``MAX_SLOW_READERS`` are kept
  waiting, and each socket's kernel send buffer is bounded (``SEND_BUFFER_BYTES``):
  slow readers hold neither a place nor memory for long;
* every error is JSON, like the rest of the API, and none is logged per connection:
  what was refused, cut off or evicted is counted and said in one WARNING line a
  minute at most (under pm2, a line per connection was 19,793 lines in 30 s).

The file descriptors all this holds are budgeted against ``ulimit -n`` at start
(:func:`fit_descriptor_budget`): the connections, the reserve, lingering refusals,
what one wake-up of the event loop may accept (the listen backlog), and the files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
from loguru import logger
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_TIMEOUT_SECONDS = 10.0
RESERVE_HEAD_SECONDS = 2.0  # a probe sends its head at once
# The request line: this API's longest is well under 1 KiB. uvicorn parses the whole
# URL (httptools.parse_url) before the application can route or authorise it: 20
# connections sending 40 KB query strings spent 39% of the server's time there
# (py-spy), and /live waited ~100 ms a poll. 8 KiB, as Apache's LimitRequestLine and
# nginx's large_client_header_buffers, bounds that work to a few microseconds.
MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_HEAD_BYTES = 64 * 1024
SEND_TIMEOUT_SECONDS = 10.0  # an answer's reader that takes nothing this long is cut off
SLOW_READER_SECONDS = 1.0  # paused this long, a reader may give its place to a new client
# A head still arriving (or a connection idle) this long may give its place to a new
# connection; a younger one keeps it, and the newcomer goes to the reserve or is
# refused. A real client sends its head within milliseconds. (In the reserve, the
# rule is counted in loop iterations instead: see ConnectionBook.admit.)
GIVE_WAY_AFTER_SECONDS = 1.0
MAX_SLOW_READERS = 16  # readers kept waiting at once (each holds its answer in memory)
# Per accepted socket. Linux doubles it and stops autotuning it (up to 4 MiB each:
# 200 slow readers pinned about 750 MB of kernel memory). 256 KiB still moves a
# 1.75 MB answer on loopback at wire speed (BENCHMARKS.md, issue 21).
SEND_BUFFER_BYTES = 256 * 1024
# For /live and /ready when every connection is busy. Three batches of accepts, so
# that every connection of a flood gets a reserve place for the two loop iterations a
# probe needs to be read (ConnectionBook.admit).
RESERVE_CONNECTIONS = 48
PROBE_PATHS = frozenset({b"/live", b"/ready"})
LINGER_SECONDS = 2.0  # a refused connection is closed this long after its answer
# Refusals lingering at once; past them a refusal closes at once. Lingering also
# paces a client that reconnects as soon as it is refused: 128 / 2 s.
LINGER_SLOTS = 128
# uvicorn's backlog is how many connections asyncio accepts in one wake-up (and the
# listen queue until LISTEN_QUEUE). An accepted connection reaches connection_made
# two loop iterations later and its descriptor is freed one after that (if refused),
# while each iteration accepts another batch: about four batches are open before any
# is looked at, which the budget keeps free (with one to spare).
ACCEPT_BACKLOG = 16
ACCEPTS_IN_FLIGHT = 5 * ACCEPT_BACKLOG
FILES_BESIDES_CONNECTIONS = 64  # SQLite files, logs, pipes, the listener, the loop
SUMMARY_EVERY_SECONDS = 60.0
# The kernel's queue of connections not yet accepted: a probe's SYN is queued behind
# a flood rather than dropped (a dropped SYN is retried after 1 s). Set once
# listening, since asyncio accepts as many per wake-up as the backlog it was given.
LISTEN_QUEUE = 4096
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


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


# -- the descriptor budget -------------------------------------------------------------


def descriptors_needed(max_connections: int) -> int:
    """Open files ``monitor serve`` may hold with ``max_connections`` connections."""
    return (
        max_connections
        + RESERVE_CONNECTIONS
        + LINGER_SLOTS
        + ACCEPTS_IN_FLIGHT
        + FILES_BESIDES_CONNECTIONS
    )


@dataclass(frozen=True)
class DescriptorBudget:
    """How many connections fit under the open-file limit, and what was done to fit."""

    max_connections: int  # what the server will hold (MONITOR_MAX_CONNECTIONS or fewer)
    limit: int | None  # the soft RLIMIT_NOFILE in force (None: unlimited)
    raised_from: int | None  # the soft limit before this process raised it
    warning: str | None  # one line for the log when the setting had to be lowered


def fit_descriptor_budget(max_connections: int) -> DescriptorBudget:
    """Raise the soft open-file limit as far as needed (up to the hard limit); when
    that is not enough, hold fewer connections than asked and say so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = descriptors_needed(max_connections)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return DescriptorBudget(max_connections, _finite(soft), None, None)
    raised_from = None
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            raised_from, soft = soft, target
        except (ValueError, OSError):
            pass
    if soft >= needed:
        return DescriptorBudget(max_connections, soft, raised_from, None)
    overhead = needed - max_connections
    fitting = max(1, soft - overhead)
    if soft - overhead < 1:
        # Not even the reserve, the lingering refusals and the accepts in flight fit:
        # under a flood accept() will fail (counted, said once a minute).
        holding = (
            f"it cannot hold even 1 connection safely ({overhead + 1} open files); "
            "holding 1 anyway, and a flood may exhaust the descriptors"
        )
    else:
        holding = f"holding {fitting} connections"
    warning = (
        f"MONITOR_MAX_CONNECTIONS={max_connections} needs {needed} open files but the "
        f"limit is {soft} (`ulimit -n`, hard {_finite(hard) or 'unlimited'}): {holding}; "
        "raise LimitNOFILE (systemd) or the ulimit, or lower the setting"
    )
    return DescriptorBudget(fitting, soft, raised_from, warning)


def _finite(limit: int) -> int | None:
    return None if limit == resource.RLIM_INFINITY else limit


# -- the book of connections -------------------------------------------------------------

GENERAL, RESERVE = "general", "reserve"


@dataclass
class Tally:
    """What happened to connections since the last summary line."""

    refused: int = 0  # answered 503: every place and the reserve busy
    evicted_heads: int = 0  # closed while their head was still arriving
    evicted_idle: int = 0  # idle keep-alive connections closed for a new one
    cut_readers: int = 0  # slow readers cut off (send timeout, or their place taken)
    head_timeouts: int = 0  # 408: no whole head in time
    oversized: int = 0  # 414 / 431
    malformed: int = 0  # 400
    not_probes: int = 0  # reserve connections that asked for something else (503)
    accept_errors: int = 0  # the kernel refused accept() (descriptors exhausted)
    since: float = field(default_factory=time.monotonic)

    def any(self) -> bool:
        return any(count for count, _ in self._parts())

    def pressure(self) -> bool:
        """Whether the cap was felt (WARNING), not only clients' mistakes (DEBUG)."""
        return any(
            (
                self.refused,
                self.evicted_heads,
                self.evicted_idle,
                self.cut_readers,
                self.accept_errors,
            )
        )

    def _parts(self) -> list[tuple[int, str]]:
        return [
            (self.refused, "refused (every place busy)"),
            (self.evicted_heads, "closed with a head still arriving"),
            (self.evicted_idle, "idle closed for new clients"),
            (self.cut_readers, "slow readers cut off"),
            (self.accept_errors, "accept() failures (out of file descriptors)"),
            (self.head_timeouts, "timed out before a whole request (408)"),
            (self.oversized, "sent a request line over 8 KiB or a head over 64 KiB (414/431)"),
            (self.malformed, "sent malformed HTTP (400)"),
            (self.not_probes, "reached the reserve for something other than /live or /ready"),
        ]

    def line(self, max_connections: int) -> str:
        said = ", ".join(f"{count} {what}" for count, what in self._parts() if count)
        seconds = time.monotonic() - self.since
        line = f"connections in the last {seconds:.0f} s: {said}"
        if self.pressure():
            line += f" (MONITOR_MAX_CONNECTIONS={max_connections})"
        return line


class ConnectionBook:
    """Every connection of one server: the cap, the reserve, who gives way, the summary.

    Event-loop only (the signal handler reaches it through ``call_soon_threadsafe``).
    Connections sit in ordered dicts by what they are doing, so that finding the one
    to close for a newcomer is O(1) under a flood, not a scan of 512.
    """

    def __init__(
        self, max_connections: int, *, log: Callable[[str, str], None] | None = None
    ) -> None:
        self.max_connections = max_connections
        self.pools: dict[str, dict[GuardedConnection, None]] = {GENERAL: {}, RESERVE: {}}
        # Who may give way, per pool, oldest first.
        self.heads: dict[str, dict[GuardedConnection, None]] = {GENERAL: {}, RESERVE: {}}
        self.idle: dict[str, dict[GuardedConnection, None]] = {GENERAL: {}, RESERVE: {}}
        self.paused: dict[GuardedConnection, None] = {}  # both pools, longest paused first
        self.by_client: dict[Any, GuardedConnection] = {}
        self.lingering = 0
        self.stopping = False
        self.tally = Tally()
        self._log = log or logger.log
        self._last_summary: float | None = None
        self.generation = 0  # loop iterations in which connections were let in
        self._ticking = False
        self._summary_due: asyncio.TimerHandle | None = None

    # -- admission ---------------------------------------------------------------------

    def admit(self, connection: GuardedConnection) -> str | None:
        """The pool a new connection joins, making room if it can; None: refuse it.

        In the reserve, a head gives way once two loop iterations have passed since it
        was let in: asyncio calls ``connection_made`` for each connection it accepted
        in the previous iteration, then, in the next, reads what arrived; a probe that
        sent its head with its connection is read then, before any newcomer of a later
        iteration may take its place. Counted in iterations, not seconds, so that a
        loop slowed down by a flood still gives every probe its turn.
        """
        # Not refused while stopping: uvicorn closes the listener within its next tick
        # (0.1 s), and what it accepted until then is answered. Under pm2 reload the
        # kernel spreads connections over both instances' listeners (SO_REUSEPORT):
        # a 503 here was a failed probe in the middle of a clean reload.
        if not self._ticking:
            self._ticking = True
            asyncio.get_running_loop().call_soon(self._tick)
        connection.generation = self.generation
        for pool, size in ((GENERAL, self.max_connections), (RESERVE, RESERVE_CONNECTIONS)):
            members = self.pools[pool]
            if len(members) >= size:
                victim = self._victim(pool)
                if victim is None:
                    continue
                victim.give_way()
            members[connection] = None
            return pool
        return None

    def _tick(self) -> None:
        self._ticking = False
        self.generation += 1

    def _victim(self, pool: str) -> GuardedConnection | None:
        now = time.monotonic()
        for waiting in (self.heads[pool], self.idle[pool]):
            if waiting:
                oldest = next(iter(waiting))
                if pool == RESERVE:
                    if self.generation - oldest.generation >= 2:
                        return oldest
                elif now - oldest.since >= GIVE_WAY_AFTER_SECONDS:
                    return oldest
        for reader in self.paused:
            if reader.pool == pool and now - reader.paused_at >= SLOW_READER_SECONDS:
                return reader
        return None

    def forget(self, connection: GuardedConnection) -> None:
        """The connection leaves the book for good (closed, refused, or giving way):
        nothing it does later (an answer finishing after its client left) files it
        again."""
        pool = connection.pool
        if pool is not None:
            self.pools[pool].pop(connection, None)
            self.heads[pool].pop(connection, None)
            self.idle[pool].pop(connection, None)
            connection.pool = None
        self.paused.pop(connection, None)
        if self.by_client.get(connection.client) is connection:
            del self.by_client[connection.client]

    def place(self, connection: GuardedConnection) -> None:
        """File a connection by what it does now (newest last in each group)."""
        pool = connection.pool
        if pool is None:
            return
        heads, idle = self.heads[pool], self.idle[pool]
        heads.pop(connection, None)
        idle.pop(connection, None)
        if connection.outstanding == 0:
            (heads if connection.in_head else idle)[connection] = None
            connection.since = time.monotonic()

    # -- slow readers ------------------------------------------------------------------

    def reader_paused(self, connection: GuardedConnection) -> None:
        self.paused[connection] = None
        if len(self.paused) > MAX_SLOW_READERS:
            oldest = next(iter(self.paused))
            if time.monotonic() - oldest.paused_at >= SLOW_READER_SECONDS:
                oldest.give_way()

    def reader_resumed(self, connection: GuardedConnection) -> None:
        self.paused.pop(connection, None)

    # -- the ASGI side (server/app.py's middleware) --------------------------------------

    def request_started(self, client: Any) -> GuardedConnection | None:
        """The connection a request arrived on (by its peer address), if guarded."""
        return self.by_client.get(client)

    def request_finished(self, connection: GuardedConnection | None) -> None:
        if connection is not None:
            connection.answered()

    # -- answers nobody reads ------------------------------------------------------------

    def watch_unsent(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every few seconds, cut off connections whose unsent answer has not shrunk
        for ``SEND_TIMEOUT_SECONDS``.

        The send deadline of a paused transport covers an answer over asyncio's 64 KiB
        high-water mark; below it (an answer a little larger than the socket buffers,
        an event stream's keep-alive comments) asyncio never pauses, and a client that
        stops reading would hold its connection for ever: uvicorn's keep-alive close
        waits for the buffer to empty. A sweep of the places (at most 512 + 48
        connections, every 5 s) catches those.
        """
        now = time.monotonic()
        for pool in self.pools.values():
            for connection in list(pool):
                if connection in self.paused:
                    continue  # its own send deadline runs
                if connection.unsent_for(now) >= SEND_TIMEOUT_SECONDS:
                    self.tally.cut_readers += 1
                    self.noted(loop)
                    self.forget(connection)
                    connection.cut_off()
        if not self.stopping:
            loop.call_later(SEND_TIMEOUT_SECONDS / 2, self.watch_unsent, loop)

    # -- stopping ----------------------------------------------------------------------

    def stop(self, loop: asyncio.AbstractEventLoop, drain_seconds: float) -> None:
        """The server is stopping: readers that keep it waiting are cut off.

        uvicorn closes each connection once its answer is sent, and waits for them to
        close; a reader that takes nothing would keep it waiting past its grace period
        (and an ERROR line). Paused readers go now; a second before the grace period
        ends, so does any connection whose answer is written but still unread.
        """
        self.stopping = True
        for reader in list(self.paused):
            reader.cut_off()
        loop.call_later(max(0.0, drain_seconds - 1.0), self._cut_unread)

    def _cut_unread(self) -> None:
        for pool in self.pools.values():
            for connection in list(pool):
                if connection.outstanding == 0:
                    connection.cut_off()

    # -- the summary line ----------------------------------------------------------------

    def noted(self, loop: asyncio.AbstractEventLoop) -> None:
        """Something was counted: say it now, or at the next minute, once.

        A mistake alone (a 400, a 408) waits for the minute, so that one bad request
        does not fill the line it would share with what follows."""
        if self._summary_due is not None:
            return
        now = time.monotonic()
        last = self._last_summary
        if self.tally.pressure() and (last is None or now - last >= SUMMARY_EVERY_SECONDS):
            self.summarise()
            return
        delay = SUMMARY_EVERY_SECONDS if last is None else last + SUMMARY_EVERY_SECONDS - now
        self._summary_due = loop.call_later(max(0.0, delay), self.summarise)

    def summarise(self) -> None:
        self._summary_due = None
        if not self.tally.any():
            return
        self._last_summary = time.monotonic()
        tally, self.tally = self.tally, Tally()
        # Under pressure, one WARNING a minute at most; clients' mistakes alone are
        # their business: one DEBUG line a minute.
        self._log("WARNING" if tally.pressure() else "DEBUG", tally.line(self.max_connections))


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, book: ConnectionBook) -> None:
    """asyncio reports each failed ``accept()`` (EMFILE) through the loop's exception
    handler, once per connection attempt: counted in the summary instead."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            book.tally.accept_errors += 1
            book.noted(loop)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


# -- one connection ------------------------------------------------------------------------


class _Refuse(Exception):
    """Raised from a parser callback; httptools turns it into HttpParserCallbackError."""


class GuardedConnection(asyncio.Protocol):
    """One connection: uvicorn's httptools protocol behind the guard's checks.

    ``book`` is set on a subclass per server (:func:`guarded_protocol`); uvicorn
    creates one instance per accepted connection with its own keyword arguments,
    which are handed to uvicorn's protocol as they are.
    """

    book: ConnectionBook

    def __init__(self, **uvicorn_arguments: Any) -> None:
        # uvicorn's protocol is made once the connection is let in: under a flood most
        # are refused or give way, and they cost no more than this object.
        self._uvicorn_arguments = uvicorn_arguments
        self.inner: HttpToolsProtocol | Any = None
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.client: Any = None
        self.pool: str | None = None
        self.in_head = True  # waiting for, or inside, a request head
        self.outstanding = 0  # requests whose head is whole and whose answer is not done
        self.paused_at = 0.0
        self.since = 0.0  # when it began its head, or became idle (ConnectionBook.place)
        self.generation = 0  # ConnectionBook.generation when it was let in
        self._unsent = 0  # bytes waiting in the transport at the last sweep
        self._unsent_since = 0.0  # since when they have not shrunk
        self._parser: Any = None  # the guard's own, once let in
        self._head_bytes = 0  # received while in a head (whole reads: see data_received)
        self._parsed_bytes = 0  # the request line, then the headers, as parsed
        self._url = b""  # kept for reserve connections only (a probe path)
        self._refusal: tuple[int, str, str] | None = None  # from a parser callback
        self._close_when_answered = False  # refused behind an answer under way
        self._messages_done = 0  # requests that ended in the current feed
        self._refused = False
        self._head_deadline: asyncio.TimerHandle | None = None
        self._send_deadline: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # As uvicorn puts it in the scope (host, port), also for IPv6's 4-tuples: the
        # middleware finds the connection of a request by it.
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else peer
        book = self.book
        self.pool = book.admit(self)
        if self.pool is None:
            book.tally.refused += 1
            book.noted(self.loop)
            self._answer_and_close(
                503, f"too many connections (at most {book.max_connections}): try again shortly"
            )
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # the kernel's default buffer then
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        book.by_client[self.client] = self
        book.place(self)
        self._parser = httptools.HttpRequestParser(self)
        # As uvicorn's own parser: the answer to a request followed by a close is sent.
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self._arm_head_deadline()
        self.inner = HttpToolsProtocol(**self._uvicorn_arguments)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: what comes after is dropped
        if self._parser is not None:
            whole, failure = self._follow(data)
            # httptools calls on_header only once a header line is whole, and buffers
            # it until then: a header that never ends is counted here, as it arrives
            # (what a read holds past the last whole request in it), and refused
            # within 64 KiB plus one read of its start.
            if failure is None and self.in_head and self._parser is not None:
                self._head_bytes += len(data) - whole
                if self._head_bytes > MAX_HEAD_BYTES:
                    failure = (431, "request headers over 64 KiB", "oversized")
            if failure is not None:
                status, message, counted = failure
                self._count(counted)
                if whole:
                    # The whole requests before the refused one are answered (uvicorn
                    # runs them); the refused one closes the connection after them.
                    self.inner.data_received(data[:whole])
                self._refuse(status, message)
                return
        self.inner.data_received(data)

    def _follow(self, data: bytes) -> tuple[int, tuple[int, str, str] | None]:
        """Feed the guard's parser: how many bytes of ``data`` hold whole requests,
        and the refusal of what follows them, if any.

        The data is fed a head at a time (split after each blank line, a C search), so
        that requests pipelined before a bad one are known to be whole; one request
        per read, the usual case, is a single feed.
        """
        parser = self._parser
        start, whole = 0, 0
        while start < len(data):
            end = data.find(b"\r\n\r\n", start)
            end = len(data) if end < 0 else end + 4
            self._messages_done = 0
            try:
                parser.feed_data(data[start:end] if start or end < len(data) else data)
            except httptools.HttpParserUpgrade:
                # uvicorn answers it as plain HTTP/1.1 (no websocket library) and
                # parses no more on this connection: nor do we.
                self._parser = None
                return len(data), None
            except httptools.HttpParserError as error:
                refusal = self._refusal or (400, f"malformed HTTP request ({error})", "malformed")
                return whole, refusal
            if self._messages_done and not self.in_head:
                whole = end
            start = end
        return whole, None

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            self.inner.eof_received()
        return None  # the transport closes its end (what uvicorn's protocol means too)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        self._disarm_send_deadline()
        book = self.book
        book.forget(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)
        self._parser = None

    def pause_writing(self) -> None:
        if self.inner is None:
            return  # a refusal's few bytes: nothing to wait for
        if self.pool is None:
            self.cut_off()  # out of the book (lingering, or giving way): no reader here
            return
        self.paused_at = time.monotonic()
        self.inner.pause_writing()
        if self.book.stopping:
            self.cut_off()
            return
        self._send_deadline = self.loop.call_later(SEND_TIMEOUT_SECONDS, self._too_slow_reader)
        self.book.reader_paused(self)

    def resume_writing(self) -> None:
        self._disarm_send_deadline()
        self.book.reader_resumed(self)
        if self.inner is not None:
            self.inner.resume_writing()

    # -- the guard's parser callbacks (httptools) ----------------------------------------

    def on_message_begin(self) -> None:
        self._parsed_bytes = 0
        self._url = b""
        if not self.in_head:
            self.in_head = True
            self.book.place(self)
        if self._head_deadline is None:
            self._arm_head_deadline()

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        if self._parsed_bytes > MAX_REQUEST_LINE_BYTES:
            self._refusal = (414, "request line over 8 KiB", "oversized")
            raise _Refuse
        if self.pool == RESERVE:
            self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Whole headers, as parsed (a head that arrived in one read is checked here).
        self._parsed_bytes += len(name) + len(value) + 4
        if self._parsed_bytes > MAX_HEAD_BYTES:
            self._refusal = (431, "request headers over 64 KiB", "oversized")
            raise _Refuse

    def on_message_complete(self) -> None:
        self._messages_done += 1

    def on_headers_complete(self) -> None:
        self._disarm_head_deadline()
        if self.pool == RESERVE and self._url.partition(b"?")[0] not in PROBE_PATHS:
            self._refusal = (
                503,
                f"too many connections (at most {self.book.max_connections}): only /live "
                "and /ready are answered now; try again shortly",
                "not_probes",
            )
            raise _Refuse
        self.in_head, self._head_bytes = False, 0
        self.outstanding += 1
        self.book.place(self)

    # -- what the book and the timers do -------------------------------------------------

    def answered(self) -> None:
        """The application finished a request on this connection."""
        self.outstanding = max(0, self.outstanding - 1)
        self.book.place(self)
        if self.outstanding == 0 and self._close_when_answered and self.transport is not None:
            self.transport.close()

    def unsent_for(self, now: float) -> float:
        """How long the bytes waiting in the transport for this client have not shrunk
        (0 when none wait); called by the book's sweep only."""
        transport = self.transport
        waiting = transport.get_write_buffer_size() if transport is not None else 0
        if not waiting:
            self._unsent, self._unsent_since = 0, now
            return 0.0
        if waiting < self._unsent or not self._unsent:
            self._unsent_since = now  # the client took some (or this is new)
        self._unsent = waiting
        return now - self._unsent_since

    def give_way(self) -> None:
        """Closed to make room for a new connection (the cap is full)."""
        book = self.book
        paused = self in book.paused  # asked before forget() drops it from there
        if paused:
            book.tally.cut_readers += 1
        elif self.in_head:
            book.tally.evicted_heads += 1
        else:
            book.tally.evicted_idle += 1
        book.noted(self.loop)
        book.forget(self)
        transport = self.transport
        if paused or transport is None or transport.get_write_buffer_size():
            # A reader, or an idle one that left part of its answer unread: a plain
            # close would wait for it to read, holding the descriptor outside the book.
            self.cut_off()
        elif self.in_head:
            # Answered and held a moment (a lingering refusal): a client that
            # reconnects at once when cut off would otherwise make every place it
            # loses cost the server another accept, as fast as it can loop.
            self._disarm_head_deadline()
            self._answer_and_close(503, "too many connections: this one sent no request in time")
        else:
            transport.close()  # idle keep-alive: an ordinary close

    def cut_off(self) -> None:
        """Drop the connection now (RST): nothing it waits for is worth more time.

        With SO_LINGER 0, as the socket closes the kernel drops what it still holds for
        the client and resets: a plain close would keep sending the send buffer to a
        reader that takes a byte a second, from a socket no one owns any more.
        """
        self._disarm_head_deadline()
        self._disarm_send_deadline()
        transport = self.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        transport.abort()

    def _too_slow_reader(self) -> None:
        self._send_deadline = None
        self.book.tally.cut_readers += 1
        self.book.noted(self.loop)
        self.cut_off()

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        seconds = RESERVE_HEAD_SECONDS if self.pool == RESERVE else HEAD_TIMEOUT_SECONDS
        self._count("head_timeouts")
        self._refuse(408, f"no complete request within {seconds:.0f} s")

    def _count(self, what: str) -> None:
        setattr(self.book.tally, what, getattr(self.book.tally, what) + 1)
        self.book.noted(self.loop)

    def _refuse(self, status: int, message: str) -> None:
        """Answer with an error and close; after the answer under way, if there is one."""
        if self._refused:
            return
        self._refused = True
        self._disarm_head_deadline()
        if self.outstanding > 0:
            # An answer is under way (a slow one, an event stream): it ends whole, then
            # the connection is closed; what came after it gets no answer.
            self._close_when_answered = True
            return
        self._answer_and_close(status, message)

    def _answer_and_close(self, status: int, message: str) -> None:
        # Answer, then stop sending and drop whatever else arrives: closing at once
        # would reset a connection whose request is still unread, and the client
        # would get the RST instead of the answer. Lingering holds a descriptor: past
        # LINGER_SLOTS at once, the connection is closed with the answer sent.
        transport = self.transport
        self._refused = True
        # Its place is free now: while it lingers, its descriptor counts among the
        # LINGER_SLOTS (or it is closed at once).
        self.book.forget(self)
        if transport is None or transport.is_closing():
            return
        transport.write(error_bytes(status, message))
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:
                # The client left already (on loopback the answer drew a reset at
                # once, and shutdown() says ENOTCONN): nothing to linger for.
                transport.abort()
                return
        book = self.book
        if book.lingering < LINGER_SLOTS:
            book.lingering += 1

            def close() -> None:
                book.lingering -= 1
                transport.close()

            self.loop.call_later(LINGER_SECONDS, close)
        else:
            transport.close()

    def _arm_head_deadline(self) -> None:
        seconds = RESERVE_HEAD_SECONDS if self.pool == RESERVE else HEAD_TIMEOUT_SECONDS
        self._head_deadline = self.loop.call_later(seconds, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _disarm_send_deadline(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None


def guarded_protocol(book: ConnectionBook) -> type[GuardedConnection]:
    """The protocol class to give uvicorn's ``Config(http=...)`` for one server."""
    return type("GuardedConnectionForServer", (GuardedConnection,), {"book": book})
