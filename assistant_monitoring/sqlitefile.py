"""Say exactly what is wrong with a SQLite file that cannot be used, and never guess.

Both databases (``assistant.db`` through aiosqlite, ``monitoring.db`` through
sqlite3) open through the checks here, so a damaged, read-only, locked or missing
file gets the same diagnosis, whichever command meets it:

* **before opening** (:func:`refuse_before_open`): what SQLite would not report, or
  would "repair" by writing: a zero-length file (SQLite would silently start a new
  database in it), a directory where the file should be, a file where the data
  directory should be;
* **after SQLite refused** (:func:`diagnose`): the error's code, then the file
  system and, where advice depends on it, a read-only ``PRAGMA quick_check``. Only
  a file that SQLite itself cannot read is called damaged: a valid file in a
  read-only directory is reported as read-only, with its data intact, and never
  with advice to move it aside.

New databases are created under a temporary name and linked into place
(:func:`create_database_file`), so a file another process is creating is never seen
half-made (zero bytes) and taken for a damaged one.

Every connection is made by :func:`connect`: a lock held by another process is
waited for ``DATABASE_BUSY_TIMEOUT`` in all, for any open, read or write, in short
slices between which signal handlers run (see :class:`PatientConnection`).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import secrets
import sqlite3
import stat
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from assistant_monitoring.durable import kind_of
from assistant_monitoring.stopping import stop_requested

Kind = Literal[
    "missing_directory",
    "not_a_directory",
    "is_a_directory",
    "not_a_file",
    "permission_denied",
    "empty",
    "corrupt",
    "truncated",
    "read_only",
    "locked",
    "disk_full",
    "io_error",
    "unknown",
]
# Problems that say nothing against the file's contents: its data is intact.
_INTACT_KINDS = frozenset({"read_only", "locked", "disk_full", "permission_denied"})
_HEADER = b"SQLite format 3\x00"
# Less free space than this and SQLite cannot grow its -wal or -shm files.
_FULL_BELOW_BYTES = 256 * 1024

# -- waiting for a lock ---------------------------------------------------------------
# SQLite's own busy handler sleeps inside C: a process waiting there runs no Python
# signal handler, so SIGTERM and Ctrl-C waited as long as the lock did (minutes, when
# each of several retries waited a full timeout). Each connection's C-level busy
# timeout is one short slice instead, and PatientConnection retries a statement that
# met a lock until the one documented timeout has passed in all.
LOCK_SLICE_MS = 50
DEFAULT_BUSY_TIMEOUT_MS = 5000.0  # DATABASE_BUSY_TIMEOUT's default
_busy_timeout_ms = [DEFAULT_BUSY_TIMEOUT_MS]
# When a wait last ran out (monotonic seconds). A command meets the same lock at
# each step (its first open, a breaker write, the run, the exit flush): it waits the
# timeout out once, and for as long again after that every wait is a single try, so
# the whole command ends within about one timeout, not one per step.
_gave_up_at = [-math.inf, 0.0]  # when, and after how long a wait (seconds)
T = TypeVar("T")


def use_busy_timeout(milliseconds: float) -> None:
    """Make ``milliseconds`` (``DATABASE_BUSY_TIMEOUT``) this process's lock wait.

    Called once the settings are known (the CLI, ``monitor serve``, the app), so
    every connection any module opens waits the documented time, not one of its own.
    """
    _busy_timeout_ms[0] = float(milliseconds)


def forget_lock_timeouts() -> None:
    """Wait in full again, as if no wait had run out (tests running many commands)."""
    _gave_up_at[:] = [-math.inf, 0.0]


def busy_timeout_ms() -> float:
    """This process's lock wait (see :func:`use_busy_timeout`)."""
    return _busy_timeout_ms[0]


def is_lock_error(error: BaseException) -> bool:
    """Whether SQLite refused because another connection holds a lock."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    code = str(getattr(error, "sqlite_errorname", "") or "")
    text = str(error)
    return code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text


def wait_for_lock(action: Callable[[], T], *, timeout_ms: float | None = None) -> T:
    """``action()``, retried while it meets a lock, for ``timeout_ms`` in all.

    Each try already waits one slice inside SQLite; between tries Python runs the
    process's signal handlers (SIGTERM's ``SystemExit`` and Ctrl-C's
    ``KeyboardInterrupt`` leave from here), and once the process is stopping
    (:func:`~assistant_monitoring.stopping.request_stop`) the wait ends at once. The
    last lock error is raised when time runs out, for :func:`diagnose` to name.
    """
    wait = (busy_timeout_ms() if timeout_ms is None else timeout_ms) / 1000
    started = time.monotonic()
    gave_up_at, after = _gave_up_at
    if after >= wait and started - gave_up_at < wait:
        wait = 0  # this process waited as long for a lock a moment ago: one try
    deadline = started + wait
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            if not is_lock_error(error) or stop_requested():
                raise
            if time.monotonic() >= deadline:
                if wait:
                    _gave_up_at[:] = [time.monotonic(), wait]
                raise
        # A lock SQLite refuses without waiting (to avoid a deadlock) must not spin.
        time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))


class PatientConnection(sqlite3.Connection):
    """A connection whose statements wait for locks as :func:`wait_for_lock` says.

    A statement refused with SQLITE_BUSY did nothing, so running it again is safe.
    Its wait is ``busy_timeout_ms`` (set by :func:`connect`).
    """

    busy_timeout_ms: float | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return wait_for_lock(
            lambda: sqlite3.Connection.execute(self, sql, parameters),
            timeout_ms=self.busy_timeout_ms,
        )

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        rows = parameters if isinstance(parameters, list | tuple) else list(parameters)
        return wait_for_lock(
            lambda: sqlite3.Connection.executemany(self, sql, rows),
            timeout_ms=self.busy_timeout_ms,
        )


def patient_factory(busy_timeout_ms: float | None) -> type[PatientConnection]:
    """A ``factory=`` for ``sqlite3.connect`` (or aiosqlite's) that waits ``busy_timeout_ms``.

    Pass ``timeout=LOCK_SLICE_MS / 1000`` with it, and set no ``PRAGMA busy_timeout``:
    SQLite's own wait must stay one slice for signals to act.
    """
    return type("PatientConnection", (PatientConnection,), {"busy_timeout_ms": busy_timeout_ms})


def connect(
    database: str | Path,
    *,
    busy_timeout_ms: float | None = None,
    uri: bool = False,
    **options: Any,
) -> PatientConnection:
    """``sqlite3.connect`` with the process's lock wait (or ``busy_timeout_ms``).

    ``options`` go to ``sqlite3.connect`` (``isolation_level``, ``check_same_thread``).
    """
    conn = sqlite3.connect(
        database, uri=uri, timeout=LOCK_SLICE_MS / 1000, factory=PatientConnection, **options
    )
    assert isinstance(conn, PatientConnection)
    conn.busy_timeout_ms = busy_timeout_ms
    return conn


@dataclass(frozen=True)
class Diagnosis:
    """What is wrong with a database file, as one line a person can act on."""

    kind: Kind
    message: str

    @property
    def data_intact(self) -> bool:
        """Whether the file's contents are fine (only access to it is the problem)."""
        return self.kind in _INTACT_KINDS


@dataclass(frozen=True)
class Subject:
    """Which database this is, for messages: its role and the setting that names it."""

    path: Path
    what: str  # "the conversations database"
    setting: str  # "DATABASE_PATH"


def refuse_before_open(subject: Subject, *, creating: bool) -> Diagnosis | None:
    """A problem SQLite would hide, or None when the file may be opened.

    ``creating``: the caller will create the file (and its directory) when absent.
    """
    path = subject.path
    blocker = _file_in_the_way(path.parent)
    if blocker is not None:
        return _not_a_directory(subject, blocker)
    if path.is_dir():
        return _is_a_directory(subject)
    odd = not_a_regular_file(path)
    if odd is not None:
        return Diagnosis(
            "not_a_file",
            f"{subject.what} {path} is {odd}, not a database file: "
            f"fix {subject.setting}, or move it aside",
        )
    if not path.exists():
        if not creating and not path.parent.is_dir():
            return Diagnosis(
                "missing_directory",
                f"{subject.what} {path}: its directory {path.parent} does not exist: "
                f"create it, or fix {subject.setting} (or ASSISTANT_DATA_DIR)",
            )
        return None
    try:
        size = path.stat().st_size
    except OSError as error:
        return _from_os_error(subject, error)
    if size == 0:
        return Diagnosis(
            "empty",
            f"{subject.what} {path} is empty (0 bytes), likely cut short by a full disk or an "
            "interrupted copy: restore it from a backup, or move it aside to start a new one",
        )
    if not os.access(path, os.R_OK):
        return _permission_denied(subject, "the file is not readable")
    return None


def present(path: Path) -> bool:
    """Whether anything is at ``path``, a broken symbolic link or a loop included.

    ``Path.exists`` says False for those, so a reader took a symlink loop where the
    store should be for "no data yet" and exited 0; with this it opens, and the
    open says what is wrong.
    """
    return os.path.lexists(path)


def not_a_regular_file(path: Path) -> str | None:
    """What ``path`` is when it is there but no regular file could be read from it.

    Asked with ``stat``, never ``open``: opening a FIFO blocks until a writer comes,
    and a device (``/dev/zero``) never ends. None for a regular file (a symlink to
    one included), a directory (said elsewhere) and a path with nothing there.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"a dangling symbolic link (to {os.readlink(path)})"
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link loop"
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return kind_of(mode)


def prepare_to_open(subject: Subject, *, busy_timeout_ms: float) -> Diagnosis | None:
    """Make ``subject`` ready for SQLite to open for writing, or say why it cannot be.

    Refuses what SQLite would hide (:func:`refuse_before_open`), creates the
    directory, and a missing file whole (:func:`create_database_file`).
    """
    problem = refuse_before_open(subject, creating=True)
    if problem is not None:
        return problem
    try:
        subject.path.parent.mkdir(parents=True, exist_ok=True)
        if not subject.path.exists():
            create_database_file(subject.path)
    except (OSError, sqlite3.Error) as error:
        return diagnose(subject, error, busy_timeout_ms=busy_timeout_ms)
    return None


def diagnose(subject: Subject, error: BaseException, *, busy_timeout_ms: float) -> Diagnosis:
    """Why SQLite (or the file system) refused ``subject``: one actionable line."""
    path = subject.path
    before = refuse_before_open(subject, creating=True)
    if before is not None:
        return before
    if isinstance(error, OSError):
        return _from_os_error(subject, error)
    code = str(getattr(error, "sqlite_errorname", "") or "")
    text = str(error)
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return Diagnosis(
            "locked",
            f"{subject.what} {path} is locked by another process (waited "
            f"{busy_timeout_ms:g} ms): let it finish, or find it with `fuser {path}`",
        )
    if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or _says_damaged(text):
        return _damaged(subject, text)
    if code.startswith("SQLITE_FULL") or "disk is full" in text or _disk_full(path.parent):
        # SQLite often says only "disk I/O error" when it cannot grow -wal or -shm.
        return _full(subject)
    refused = code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_PERM"))
    if refused or "readonly" in text or "unable to open" in text:
        reason = read_only_reason(path)
        if reason is None and (code.startswith("SQLITE_READONLY") or "readonly" in text):
            reason = "SQLite refused to write it"
        if reason is not None:
            # Only a file that still reads correctly is "intact, but read-only".
            if is_valid(path) is False:
                return _damaged(subject, text)
            return _read_only(subject, reason)
        if code.startswith("SQLITE_IOERR") or "disk I/O" in text:
            if is_valid(path) is False:
                return _damaged(subject, text)
            return Diagnosis(
                "io_error",
                f"{subject.what} {path}: disk I/O error ({text}): check the disk (`dmesg`)",
            )
    return Diagnosis(
        "unknown", f"cannot use {subject.what} {path} ({text}): check {subject.setting}"
    )


def is_valid(path: Path) -> bool | None:
    """``PRAGMA quick_check`` on a read-only connection: True, False, or None (cannot tell)."""
    try:
        conn = open_read_only(path, timeout=1.0)
    except sqlite3.DatabaseError as error:
        return False if _says_damaged(str(error)) else None
    try:
        rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as error:
        return False if _says_damaged(str(error)) else None
    finally:
        conn.close()
    return bool(rows) and rows[0][0] == "ok"


def open_read_only(path: Path, *, timeout: float) -> sqlite3.Connection:
    """A connection that can never write ``path``, even in a read-only directory.

    A WAL database opened read-only needs its ``-shm`` file; in a directory nobody
    may write (or on a full disk) that file cannot be made and SQLite refuses
    ("unable to open", "disk I/O error"). Then the file is opened as immutable:
    nothing can be writing it, since a writer would need that same directory (or
    the space).
    """
    uri = f"file:{_uri_path(path)}?mode=ro"
    try:
        return _connect_and_probe(uri, timeout)
    except sqlite3.OperationalError:
        if read_only_reason(path) is None and not _disk_full(path.parent):
            raise
    return _connect_and_probe(f"{uri}&immutable=1", timeout)


def open_immutable(path: Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A connection that reads ``path``'s own bytes only: no lock, no ``-wal``, no ``-shm``.

    Right only for a file nobody writes (a copy, a backup, a database nobody has open).
    """
    return _connect_and_probe(f"file:{_uri_path(path)}?mode=ro&immutable=1", timeout)


def _connect_and_probe(uri: str, timeout: float) -> sqlite3.Connection:
    conn = connect(uri, uri=True, busy_timeout_ms=timeout * 1000, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def create_database_file(path: Path) -> None:
    """Create an empty WAL database at ``path`` atomically, unless one appears first.

    SQLite writes a new database's header only on its first write, so a file it is
    creating is zero bytes for a moment; another process opening it then could not
    tell it from a file emptied by a full disk. A temporary file holding a header,
    hard-linked into place, is never seen half-made, and ``link`` refuses to
    replace a database another process created meanwhile.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        conn = sqlite3.connect(temporary)
        try:
            # Before the first write: retention's freed pages can then go back to the
            # file system a few at a time (metrics/retention.py), no VACUUM needed.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")  # writes the header
        finally:
            conn.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process won: use its file
        except OSError:
            # No hard links here (some network or FUSE file systems): let SQLite
            # create it in place, as it would have anyway.
            if not path.exists():
                sqlite3.connect(path).close()
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def truncation(path: Path) -> tuple[int, int] | None:
    """``(size, expected)`` when the header says the file is longer than it is.

    Only asked after SQLite called the file malformed: a checkpoint in progress
    can make a healthy file look short for a moment, while its ``-wal`` holds the
    rest, so this is an explanation, never a reason to refuse a file.
    """
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
            size = os.fstat(handle.fileno()).st_size
    except OSError:
        return None
    if len(header) < 100 or not header.startswith(_HEADER):
        return None
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages, change, valid_for = struct.unpack(">I", header[28:32])[0], header[24:28], header[92:96]
    expected = page_size * pages
    if pages and change == valid_for and size < expected:
        return size, expected
    return None


# -- helpers ----------------------------------------------------------------------------


def _uri_path(path: Path) -> str:
    # '?' and '#' would end the path part of the URI; '%' starts an escape.
    return str(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _file_in_the_way(directory: Path) -> Path | None:
    """The nearest ancestor of ``directory`` (itself included) that exists and is not a dir."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def read_only_reason(path: Path) -> str | None:
    """Why ``path`` cannot be written, when it can be read; None when it can be written."""
    directory = path.parent
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "the file system is mounted read-only"
    except OSError:
        return None
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    if not os.access(directory, os.W_OK):
        return f"its directory {directory} is not writable"
    return None


def _disk_full(directory: Path) -> bool:
    """Whether the file system holding ``directory`` has (next to) no space left."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            try:
                stats = os.statvfs(candidate)
            except OSError:
                return False
            return stats.f_bavail * stats.f_frsize < _FULL_BELOW_BYTES
    return False


def _says_damaged(text: str) -> bool:
    return "not a database" in text or "malformed" in text


def _is_a_directory(subject: Subject) -> Diagnosis:
    return Diagnosis(
        "is_a_directory",
        f"{subject.what} {subject.path} is a directory, not a database file: fix {subject.setting}",
    )


def _read_only(subject: Subject, reason: str) -> Diagnosis:
    return Diagnosis(
        "read_only",
        f"{subject.what} {subject.path} is intact but cannot be written ({reason}): make it "
        f"writable (chmod/chown, or remount the disk read-write), or set "
        f"{subject.setting} to a writable path",
    )


def _full(subject: Subject) -> Diagnosis:
    return Diagnosis(
        "disk_full",
        f"{subject.what} {subject.path}: the disk is full: free some space "
        f"(`df -h {subject.path.parent}`); the data written so far is intact",
    )


def _not_a_directory(subject: Subject, blocker: Path) -> Diagnosis:
    return Diagnosis(
        "not_a_directory",
        f"{subject.what} {subject.path} cannot be used: {blocker} is a file, not a directory: "
        f"fix {subject.setting} (or ASSISTANT_DATA_DIR)",
    )


def _permission_denied(subject: Subject, detail: str) -> Diagnosis:
    return Diagnosis(
        "permission_denied",
        f"{subject.what} {subject.path}: permission denied ({detail}): give this user read and "
        "write access (chown/chmod), or run as the file's owner",
    )


def _damaged(subject: Subject, text: str) -> Diagnosis:
    path = subject.path
    short = truncation(path)
    if short is not None:
        size, expected = short
        return Diagnosis(
            "truncated",
            f"{subject.what} {path} is truncated ({size} of {expected} bytes): restore it from "
            "a backup, or move it aside and a new one will be created",
        )
    return Diagnosis(
        "corrupt",
        f"{subject.what} {path} is damaged ({text}): restore it from a backup, or move it "
        "aside and a new one will be created",
    )


def _from_os_error(subject: Subject, error: OSError) -> Diagnosis:
    path = subject.path
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM):
        return _permission_denied(subject, reason)
    if error.errno == errno.EROFS:
        return _read_only(subject, "the file system is mounted read-only")
    if error.errno == errno.ENOSPC:
        return _full(subject)
    if error.errno == errno.ENOTDIR:
        blocker = _file_in_the_way(path.parent) or path.parent
        return _not_a_directory(subject, blocker)
    if error.errno == errno.EISDIR:
        return _is_a_directory(subject)
    return Diagnosis(
        "unknown", f"cannot use {subject.what} {path} ({reason}): check {subject.setting}"
    )
