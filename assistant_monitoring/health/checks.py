"""The built-in checks: database, LLM API, memory, disk, circuit breakers.

Each returns a :class:`CheckOutcome` with a message a person can act on. Blocking
work (SQLite, HTTP, statvfs) runs in a thread so the checks really run concurrently.
The LLM check uses the standard library's HTTP client, not the provider SDK: it
must not pay the SDK's ~1 s import to say whether the API answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from assistant_monitoring.endpoints import (
    USERINFO_PROBLEM,
    auth_headers,
    basic_auth,
    has_userinfo,
    models_url,
)
from assistant_monitoring.health.model import CheckOutcome, Status
from assistant_monitoring.health.monitor import HealthCheck
from assistant_monitoring.schemas import newer_migrations
from assistant_monitoring.servicenames import llm_service
from assistant_monitoring.settings import Settings
from assistant_monitoring.sqlitefile import present

_PROVIDER_NAMES = {"anthropic": "Anthropic", "openai": "OpenAI"}
T = TypeVar("T")


async def in_daemon_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking ``function`` in a daemon thread and await its result.

    Not ``asyncio.to_thread``: a check that hangs past its timeout is abandoned, and
    the default executor's threads would hold the process open (asyncio.run and the
    interpreter both join them) until the hung call returned.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def work() -> None:
        try:
            result = function(*args, **kwargs)
        except BaseException as error:  # handed to the awaiting coroutine
            outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, error)
        else:
            outcome = (future.set_result, result)
        # RuntimeError: the loop is closed, nobody waits for this check any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=work, name="health-check", daemon=True).start()
    return await future


# -- database ---------------------------------------------------------------------


def check_database_sync(path: Path, *, slow_ms: float, busy_timeout_ms: float) -> CheckOutcome:
    """Open the database read-only, run ``SELECT 1`` and time it; say what is wrong if not.

    Never writes: a damaged file stays as it was. Readable but not writable is
    unhealthy too (the assistant could not save a conversation), with the data intact.
    """
    from assistant_monitoring.sqlitefile import (
        Subject,
        diagnose,
        open_read_only,
        read_only_reason,
        refuse_before_open,
    )

    subject = Subject(path, "the conversations database", "DATABASE_PATH")
    if not path.parent.exists():
        return CheckOutcome(
            Status.UNHEALTHY,
            f"data directory {path.parent} does not exist: create it or set ASSISTANT_DATA_DIR",
        )
    problem = refuse_before_open(subject, creating=False)
    if problem is not None:
        return CheckOutcome(Status.UNHEALTHY, problem.message)
    if not present(path):
        return CheckOutcome(
            Status.DEGRADED,
            f"{path.name} not created yet: run `assistant db migrate` (or any assistant command)",
        )
    started = time.perf_counter()
    try:
        conn = open_read_only(path, timeout=min(busy_timeout_ms, 2000) / 1000)
        try:
            conn.execute("SELECT 1").fetchone()
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            applied = _applied_migrations(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        found = diagnose(subject, error, busy_timeout_ms=min(busy_timeout_ms, 2000))
        return CheckOutcome(Status.UNHEALTHY, found.message)
    elapsed_ms = (time.perf_counter() - started) * 1000
    newer = newer_migrations("conversations", applied)
    if newer:  # the assistant refuses it: it cannot answer
        return CheckOutcome(
            Status.UNHEALTHY,
            f"{path.name} was migrated by a newer version of assistant ({', '.join(newer)}): "
            "upgrade assistant",
        )
    unwritable = read_only_reason(path)
    if unwritable is not None:
        return CheckOutcome(
            Status.UNHEALTHY,
            f"{path.name} reads fine but cannot be written ({unwritable}): make it writable",
            round(elapsed_ms, 3),
            "ms",
        )
    if elapsed_ms > slow_ms:
        return CheckOutcome(
            Status.DEGRADED,
            f"slow: SELECT 1 took {elapsed_ms:.0f} ms (over {slow_ms:g} ms)",
            round(elapsed_ms, 3),
            "ms",
        )
    return CheckOutcome(Status.HEALTHY, "SELECT 1 answered", round(elapsed_ms, 3), "ms")


def _applied_migrations(conn: sqlite3.Connection) -> list[str]:
    try:
        return [row[0] for row in conn.execute("SELECT name FROM schema_migrations")]
    except sqlite3.OperationalError:  # never migrated
        return []


# -- LLM API ----------------------------------------------------------------------


def check_llm_sync(
    provider: str,
    api_key: str | None,
    base_url: str | None,
    *,
    timeout: float,
    slow_seconds: float,
    key_where: str,
) -> CheckOutcome:
    """``GET /v1/models``: authenticated, cheap, and spends no tokens.

    Messages name the URL with any password shown as ``***``.
    """
    from assistant_monitoring.redact import mask_url

    name = _PROVIDER_NAMES.get(provider, provider)
    target = models_url(provider, base_url)
    url = mask_url(target)  # what every message shows
    if not api_key:
        return CheckOutcome(
            Status.UNHEALTHY,
            f"no API key for {name}: set {key_where}",
        )
    headers = auth_headers(provider, api_key)
    rejected = f"rejected the API key (STATUS): check {key_where}"
    if has_userinfo(base_url):
        # As the SDKs do: Basic auth from the userinfo, replacing the key's header.
        target, basic = basic_auth(target)
        headers = {k: v for k, v in headers.items() if k not in ("x-api-key", "authorization")}
        headers.update(basic)
        rejected = f"rejected the credentials (STATUS): {USERINFO_PROBLEM} ({url})"
    request = urllib.request.Request(target, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1 << 20)
    except urllib.error.HTTPError as error:
        elapsed = time.perf_counter() - started
        return _http_error(name, error, elapsed, rejected, url)
    except urllib.error.URLError as error:
        return _connection_error(name, error.reason, url, timeout)
    except TimeoutError:
        return CheckOutcome(Status.UNHEALTHY, f"{name} did not answer within {timeout:g}s ({url})")
    except (ConnectionError, OSError) as error:
        return _connection_error(name, error, url, timeout)
    elapsed = time.perf_counter() - started
    value = round(elapsed * 1000, 3)
    if elapsed > slow_seconds:
        return CheckOutcome(
            Status.DEGRADED,
            f"{name} answered slowly: {elapsed:.1f}s (over {slow_seconds:g}s)",
            value,
            "ms",
        )
    return CheckOutcome(Status.HEALTHY, f"{name} API answered ({url})", value, "ms")


def _http_error(
    name: str, error: urllib.error.HTTPError, elapsed: float, rejected: str, url: str
) -> CheckOutcome:
    """``rejected``: what a 401 or 403 means here, STATUS standing for the code (not
    str.format: a path in ``key_where`` may hold braces)."""
    value = round(elapsed * 1000, 3)
    status = error.code
    if status in (401, 403):
        return CheckOutcome(
            Status.UNHEALTHY, f"{name} {rejected.replace('STATUS', str(status))}", value, "ms"
        )
    if status == 429:
        retry_after = error.headers.get("retry-after") if error.headers else None
        wait = f", retry after {retry_after}s" if retry_after else ""
        return CheckOutcome(Status.DEGRADED, f"{name} is rate limiting us (429){wait}", value, "ms")
    if status >= 500:
        return CheckOutcome(
            Status.UNHEALTHY, f"{name} API server error ({status}) at {url}", value, "ms"
        )
    if status == 404:
        return CheckOutcome(
            Status.UNHEALTHY,
            f"{url} not found (404): check LLM_BASE_URL (a server root or ending in /v1)",
            value,
            "ms",
        )
    return CheckOutcome(Status.UNHEALTHY, f"{name} API answered {status} at {url}", value, "ms")


def _connection_error(name: str, reason: object, url: str, timeout: float) -> CheckOutcome:
    if isinstance(reason, socket.gaierror):
        return CheckOutcome(
            Status.UNHEALTHY, f"cannot resolve the host of {url} (DNS): check LLM_BASE_URL"
        )
    if isinstance(reason, TimeoutError | socket.timeout):
        return CheckOutcome(Status.UNHEALTHY, f"{name} did not answer within {timeout:g}s ({url})")
    if isinstance(reason, ConnectionRefusedError):
        return CheckOutcome(
            Status.UNHEALTHY, f"cannot connect to {url} (connection refused): is the server up?"
        )
    return CheckOutcome(Status.UNHEALTHY, f"cannot reach {name} at {url}: {reason}")


# -- memory and disk ----------------------------------------------------------------


def _meminfo() -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    return values


def check_memory_sync(
    *, limit_bytes: int | None, degraded_percent: float, unhealthy_percent: float
) -> CheckOutcome:
    """Process RSS against ``limit_bytes`` when set, else system memory in use."""
    from assistant_monitoring.metrics.instrument import _resident_bytes

    rss = _resident_bytes() or 0
    if limit_bytes:
        used_percent = rss / limit_bytes * 100
        what = f"process uses {rss / 2**20:.0f} MiB of its {limit_bytes / 2**20:.0f} MiB limit"
    else:
        try:
            info = _meminfo()
        except OSError:
            return CheckOutcome(Status.HEALTHY, "system memory unknown (no /proc/meminfo)")
        total, available = info["MemTotal"], info.get("MemAvailable", info.get("MemFree", 0))
        used_percent = (1 - available / total) * 100
        what = (
            f"system memory {used_percent:.0f}% used ({available / 2**30:.1f} GiB available); "
            f"process {rss / 2**20:.0f} MiB"
        )
    value = round(used_percent, 2)
    if used_percent >= unhealthy_percent:
        return CheckOutcome(Status.UNHEALTHY, f"{what} (>= {unhealthy_percent:g}%)", value, "%")
    if used_percent >= degraded_percent:
        return CheckOutcome(Status.DEGRADED, f"{what} (>= {degraded_percent:g}%)", value, "%")
    return CheckOutcome(Status.HEALTHY, what, value, "%")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk_sync(
    paths: list[Path], *, degraded_free_percent: float, unhealthy_free_percent: float
) -> CheckOutcome:
    """Free space of the file systems holding ``paths`` (the fullest one counts)."""
    worst_free, worst_path, worst_bytes = 101.0, paths[0], 0
    for path in paths:
        usage = shutil.disk_usage(_existing(path))
        free_percent = usage.free / usage.total * 100 if usage.total else 100.0
        if free_percent < worst_free:
            worst_free, worst_path, worst_bytes = free_percent, path, usage.free
    what = f"{worst_free:.1f}% free ({worst_bytes / 2**30:.1f} GiB) for {worst_path}"
    value = round(worst_free, 2)
    if worst_free <= unhealthy_free_percent:
        return CheckOutcome(Status.UNHEALTHY, f"{what}: free some space", value, "%")
    if worst_free <= degraded_free_percent:
        return CheckOutcome(Status.DEGRADED, f"{what}: running low", value, "%")
    return CheckOutcome(Status.HEALTHY, what, value, "%")


# -- storage ------------------------------------------------------------------------


def _bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover


def _tree_bytes(directory: Path) -> int:
    total = 0
    if directory.is_dir():
        for entry in directory.rglob("*"):
            with contextlib.suppress(OSError):
                if entry.is_file():
                    total += entry.stat().st_size
    return total


def check_storage_sync(
    databases: list[Path], log_dir: Path, backup_dir: Path, *, backup_max_age_days: float | None
) -> CheckOutcome:
    """Sizes of the databases (with their WAL) and the logs; the latest backup's age.

    Degraded when ``backup_max_age_days`` is set and the newest backup in
    ``backup_dir`` is older, or there is none. Never unhealthy: an old backup does
    not stop the assistant from answering.
    """
    from assistant_monitoring.backup import backups_in

    sizes = []
    total = 0
    for path in databases:
        size = sum(
            Path(str(path) + side).stat().st_size
            for side in ("", "-wal")
            if Path(str(path) + side).exists()
        )
        total += size
        sizes.append(f"{path.name} {_bytes(size)}")
    logs = _tree_bytes(log_dir)
    total += logs
    sizes.append(f"logs {_bytes(logs)}")
    found = backups_in(backup_dir)
    if found:
        age_days = (time.time() - found[-1].stat().st_mtime) / 86400
        latest = f"latest backup {age_days:.1f} d ago ({found[-1]})"
    else:
        age_days, latest = None, f"no backup in {backup_dir}"
    message = f"{', '.join(sizes)}; {latest}"
    if backup_max_age_days is not None and (age_days is None or age_days > backup_max_age_days):
        advice = (
            f"older than MONITOR_BACKUP_MAX_AGE_DAYS={backup_max_age_days:g}"
            if found
            else "none yet"
        )
        return CheckOutcome(
            Status.DEGRADED,
            f"{message}: {advice}; run `assistant db backup {backup_dir}`",
            total,
            "bytes",
        )
    return CheckOutcome(Status.HEALTHY, message, total, "bytes")


# -- breakers -----------------------------------------------------------------------


def check_breakers_sync(store_path: Path) -> CheckOutcome:
    """Any open circuit breaker degrades (the service fails fast until it recovers)."""
    from assistant_monitoring.breaker.store import BreakerStateStore

    if not present(store_path):
        return CheckOutcome(Status.HEALTHY, "no breaker has tripped", 0, "open")
    from assistant_monitoring.metrics.store import StoreError

    store = BreakerStateStore(store_path, read_only_ok=True)
    try:
        states = store.load_all()
    except StoreError as error:
        # Unreadable shared state: every process now keeps its own breakers.
        return CheckOutcome(Status.UNHEALTHY, f"cannot read the breakers' state: {error}")
    finally:
        store.close()
    now = time.time()
    opened = [s for s in states if s.state != "closed"]
    if not opened:
        return CheckOutcome(Status.HEALTHY, f"{len(states)} breakers closed", 0, "open")
    parts = []
    for state in opened:
        wait = max(0.0, (state.retry_at or now) - now)
        parts.append(f"{state.service} {state.state} (retry in {wait:.0f}s)")
    return CheckOutcome(Status.DEGRADED, "; ".join(parts), len(opened), "open")


# -- assembly -----------------------------------------------------------------------


def builtin_checks(settings: Settings, *, timeout_cap: float | None = None) -> list[HealthCheck]:
    """The built-in checks, configured from ``settings``; ``timeout_cap`` bounds each."""
    health = settings.health
    llm = settings.llm
    key = llm.api_key.get_secret_value() if llm.api_key else None
    timeout = health.check_timeout_seconds
    if timeout_cap is not None:
        timeout = min(timeout, timeout_cap)

    async def database() -> CheckOutcome:
        return await in_daemon_thread(
            check_database_sync,
            settings.database_path,
            slow_ms=health.database_slow_ms,
            busy_timeout_ms=settings.database.busy_timeout_ms,
        )

    async def llm_api() -> CheckOutcome:
        return await in_daemon_thread(
            check_llm_sync,
            llm.provider,
            key,
            llm.base_url,
            timeout=timeout,
            slow_seconds=health.llm_slow_seconds,
            key_where=settings.where("LLM_API_KEY"),
        )

    async def memory() -> CheckOutcome:
        return check_memory_sync(
            limit_bytes=health.memory_limit_bytes,
            degraded_percent=health.memory_degraded_percent,
            unhealthy_percent=health.memory_unhealthy_percent,
        )

    async def disk() -> CheckOutcome:
        return await in_daemon_thread(
            check_disk_sync,
            [settings.data_dir, settings.log_dir],
            degraded_free_percent=health.disk_degraded_free_percent,
            unhealthy_free_percent=health.disk_unhealthy_free_percent,
        )

    async def breakers() -> CheckOutcome:
        return await in_daemon_thread(check_breakers_sync, settings.monitoring_db_path)

    async def storage() -> CheckOutcome:
        return await in_daemon_thread(
            check_storage_sync,
            [settings.database_path, settings.monitoring_db_path],
            settings.log_dir,
            settings.backup_dir,
            backup_max_age_days=settings.monitoring.backup_max_age_days,
        )

    return [
        HealthCheck("database", database, timeout, True, "database", "responseTime", "datastore"),
        HealthCheck(
            "llm", llm_api, timeout + 1, True, llm_service(llm.provider), "responseTime", "system"
        ),
        HealthCheck("memory", memory, timeout, True, "memory", "utilization", "system"),
        HealthCheck("disk", disk, timeout, True, "disk", "free", "system"),
        HealthCheck("breakers", breakers, timeout, True, "circuitBreakers", "open", "component"),
        HealthCheck("storage", storage, timeout, False, "storage", "size", "datastore"),
    ]
