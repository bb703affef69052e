"""Hostile clients for ``monitor serve``, run as their own process (no GIL shared with
the test that measures ``/live``), and a ``/live`` poller for the test itself.

    python -m tests.helpers.attack idle PORT COUNT SECONDS
    python -m tests.helpers.attack slowloris PORT COUNT SECONDS
    python -m tests.helpers.attack readers PORT COUNT SECONDS PATH
    python -m tests.helpers.attack queries PORT COUNT SECONDS

``idle``: COUNT connections that send nothing, held; ``slowloris``: COUNT connections
that send a request head one byte a second, never ending it, each opening a new
connection as soon as the server closes it. ``readers``: COUNT connections
that ask for PATH with a 4 KiB receive buffer and read one byte a second. Each prints
one JSON line at the end: connections opened, closed by the server, bytes read.
``queries``: COUNT keep-alive connections sending, as fast as they are answered,
requests whose query holds 10,000 names (40 KB), with no token, on a new connection
whenever one is closed.
Loopback only; every socket is closed at the end.
"""

from __future__ import annotations

import json
import selectors
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

_HEAD = b"GET /live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4096


def _connect(port: int, *, receive_buffer: int | None = None) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    try:
        sock.connect_ex(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def flood(port: int, count: int, seconds: float, *, trickle: bool) -> dict[str, int]:
    """Hold ``count`` connections for ``seconds``; trickling, reopen each the server
    closes."""
    selector = selectors.DefaultSelector()
    sent: dict[socket.socket, int] = {}
    opened = closed = 0

    def open_one() -> None:
        nonlocal opened
        sock = _connect(port)
        if sock is not None:
            opened += 1
            sent[sock] = 0
            selector.register(sock, selectors.EVENT_READ)

    for _ in range(count):
        open_one()
    end = time.monotonic() + seconds
    next_byte = time.monotonic() + 1.0
    while time.monotonic() < end:
        for key, _ in selector.select(timeout=0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed (or reset) by the server: come back
                closed += 1
                selector.unregister(sock)
                sent.pop(sock, None)
                sock.close()
                if trickle:
                    open_one()
        if trickle and time.monotonic() >= next_byte:
            next_byte += 1.0
            for sock, count_sent in list(sent.items()):
                try:
                    sock.send(_HEAD[count_sent % len(_HEAD) : count_sent % len(_HEAD) + 1])
                    sent[sock] = count_sent + 1
                except OSError:
                    pass  # the read side notices the close
    for sock in sent:
        sock.close()
    selector.close()
    return {"opened": opened, "closed_by_server": closed}


_ESTABLISHED = 1  # tcp_states.h; a reset makes it CLOSE (7), a FIN CLOSE_WAIT (8)


def _tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def readers(port: int, count: int, seconds: float, path: str) -> dict[str, object]:
    """``count`` readers taking ``path`` at one byte a second."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.setblocking(False)
        socks.append(sock)
    started = time.monotonic()
    got = [0] * count
    cut_at: list[float | None] = [None] * count
    while time.monotonic() - started < seconds:
        for number, sock in enumerate(socks):
            if cut_at[number] is not None:
                continue
            try:
                data = sock.recv(1)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                got[number] += 1
            # The kernel still holds what arrived before a reset, readable a byte a
            # second: the connection's TCP state says whether the server let go.
            if not data or _tcp_state(sock) != _ESTABLISHED:
                cut_at[number] = round(time.monotonic() - started, 2)
        time.sleep(1.0)
    for sock in socks:
        sock.close()
    return {"read": got, "cut_after_seconds": cut_at}


def queries(port: int, count: int, seconds: float) -> dict[str, object]:
    """``count`` connections asking ``/api/runs`` with 10,000 query names, no token."""
    request = "GET /api/runs?" + "&".join(["a=1"] * 10_000) + " HTTP/1.1\r\nHost: x\r\n\r\n"
    data = request.encode()
    statuses: dict[str, int] = {}

    def one() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:  # a new connection whenever one is closed
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    while time.monotonic() < end:
                        sock.sendall(data)
                        answer = sock.recv(65536)
                        if not answer.startswith(b"HTTP/1.1 "):
                            break  # closed, or the rest of an answer: start afresh
                        status = answer[9:12].decode("latin-1")
                        statuses[status] = statuses.get(status, 0) + 1
            except OSError as error:
                statuses[type(error).__name__] = statuses.get(type(error).__name__, 0) + 1

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"statuses": statuses}


# -- the poller the tests run in their own process -----------------------------------------


@dataclass
class LivePolls:
    """Latencies (seconds) of ``/live`` polls, and the polls that failed."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.latencies:
            return f"no answers, failures: {self.failures[:5]}"
        ordered = sorted(self.latencies)
        return (
            f"{len(ordered)} answered, {len(self.failures)} failed {self.failures[:3]}; "
            f"median {statistics.median(ordered) * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms"
        )


def poll_live(port: int, seconds: float, polls: LivePolls, every: float = 0.1) -> None:
    """Ask ``/live`` on a new connection every ``every`` s for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            if answer.startswith(b"HTTP/1.1 200"):
                polls.latencies.append(time.perf_counter() - started)
            else:
                status = answer.split(b"\r\n", 1)[0]
                body = answer.partition(b"\r\n\r\n")[2][:100]
                polls.failures.append((status + b" " + body).decode("latin-1") or "no answer")
        except OSError as error:
            polls.failures.append(f"{type(error).__name__}: {error}")
        time.sleep(max(0.0, every - (time.perf_counter() - started)))


def polling(port: int, seconds: float) -> tuple[threading.Thread, LivePolls]:
    polls = LivePolls()
    thread = threading.Thread(target=poll_live, args=(port, seconds, polls), daemon=True)
    thread.start()
    return thread, polls


def main() -> None:
    mode, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    if mode == "readers":
        result: dict[str, object] = readers(port, count, seconds, sys.argv[5])
    elif mode == "queries":
        result = queries(port, count, seconds)
    else:
        result = dict(flood(port, count, seconds, trickle=mode == "slowloris"))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
