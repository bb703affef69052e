"""The assistant's SQLite database (aiosqlite): a small connection pool, migrations,
and every query timed by the instrumentation and guarded by the ``database`` breaker.

WAL mode lets readers and the writer work at once; ``busy_timeout`` makes a writer
wait for another process's write instead of failing; writes that must land together
go through :meth:`Database.transaction` (``BEGIN IMMEDIATE``), so a failure leaves
nothing half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import DatabaseError
from assistant.storage.migrations import MIGRATIONS, Migration
from assistant_monitoring.sqlitefile import (
    LOCK_SLICE_MS,
    Diagnosis,
    Subject,
    diagnose,
    patient_factory,
    prepare_to_open,
)

if TYPE_CHECKING:
    import aiosqlite

    from assistant_monitoring.breaker import CircuitBreaker
    from assistant_monitoring.metrics import Instrumentation


def operation_of(sql: str) -> str:
    """select/insert/update/delete/other: the ``operation`` label of a statement."""
    word = sql.lstrip().split(None, 1)[0].lower() if sql.strip() else ""
    return word if word in ("select", "insert", "update", "delete") else "other"


class Connection:
    """One pooled connection; queries go through instrumentation and the breaker."""

    def __init__(self, db: Database, raw: aiosqlite.Connection) -> None:
        self._db = db
        self.raw = raw

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows."""
        return await self._db._timed(self.raw, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""
        await self._db._timed(self.raw, sql, list(rows), many=True)


class Database:
    """The assistant database at ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        max_connections: int = 5,
        busy_timeout_ms: int = 5000,
        instrumentation: Instrumentation | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.path = path
        self.max_connections = max_connections
        self.busy_timeout_ms = busy_timeout_ms
        self.instrumentation = instrumentation
        self.breaker = breaker
        self._idle: list[aiosqlite.Connection] = []
        self._all: list[aiosqlite.Connection] = []
        self._slots = asyncio.Semaphore(max_connections)

    # -- connections ---------------------------------------------------------------

    @property
    def subject(self) -> Subject:
        """This file, as the diagnosis messages name it."""
        return Subject(self.path, "the conversations database", "DATABASE_PATH")

    async def _open(self) -> aiosqlite.Connection:
        import aiosqlite

        problem = prepare_to_open(self.subject, busy_timeout_ms=self.busy_timeout_ms)
        if problem is not None:
            raise DatabaseError(problem.message)
        raw: aiosqlite.Connection | None = None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves. A patient
            # connection waits busy_timeout_ms for a lock in all, in slices, and gives
            # up at once when the process is stopping (its thread would otherwise
            # hold the exit for the whole wait).
            raw = await aiosqlite.connect(
                self.path,
                timeout=LOCK_SLICE_MS / 1000,
                factory=patient_factory(self.busy_timeout_ms),
                isolation_level=None,
            )
            # Read only, first: a database from a newer version is refused before
            # anything (the journal mode included) is changed in it.
            self.refuse_newer(await _applied_names(raw))
            await raw.execute("PRAGMA journal_mode = WAL")
            await raw.execute("PRAGMA foreign_keys = ON")
            await raw.execute("PRAGMA synchronous = NORMAL")
        except BaseException as error:
            # A connection whose set-up failed must still be closed: its worker
            # thread is not a daemon and would keep the process alive forever.
            if raw is not None:
                with contextlib.suppress(Exception):
                    await raw.close()
            if isinstance(error, OSError | sqlite3.Error):
                raise DatabaseError(self._diagnosis(error).message) from None
            raise
        self._all.append(raw)
        return raw

    def _diagnosis(self, error: BaseException) -> Diagnosis:
        return diagnose(self.subject, error, busy_timeout_ms=self.busy_timeout_ms)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """Borrow a connection (at most ``max_connections`` exist at once)."""
        async with self._slots:
            raw = self._idle.pop() if self._idle else await self._open()
            try:
                yield Connection(self, raw)
            finally:
                self._idle.append(raw)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A write transaction: everything inside commits together or not at all."""
        async with self.connection() as conn:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def close(self) -> None:
        """Close every connection (each one, even when closing another fails)."""
        connections, self._all = self._all, []
        self._idle.clear()
        for raw in connections:
            with contextlib.suppress(Exception):
                await raw.close()

    # -- queries ------------------------------------------------------------------

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on a pooled connection."""
        async with self.connection() as conn:
            return await conn.execute(sql, params)

    async def _timed(
        self, raw: aiosqlite.Connection, sql: str, params: Any, *, many: bool = False
    ) -> list[tuple[Any, ...]]:
        import aiosqlite

        async def run() -> list[tuple[Any, ...]]:
            if many:
                await raw.executemany(sql, params)
                return []
            async with raw.execute(sql, params) as cursor:
                return [tuple(row) for row in await cursor.fetchall()]

        async def guarded() -> list[tuple[Any, ...]]:
            if self.breaker is None:
                return await run()
            return await self.breaker.acall(run)  # type: ignore[no-any-return]

        try:
            if self.instrumentation is None:
                return await guarded()
            async with self.instrumentation.db_query(operation_of(sql)):
                return await guarded()
        except aiosqlite.Error as error:
            found = self._diagnosis(error)
            message = (
                found.message
                if found.kind != "unknown"
                else f"database error in {operation_of(sql)}: {error}"
            )
            translated = DatabaseError(message)
            translated.breaker_recorded = self.breaker is not None
            raise translated from error

    # -- schema ---------------------------------------------------------------------

    async def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
        """Apply the migrations not applied yet, in order; returns the names applied."""
        applied_now: list[str] = []
        async with self.connection() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
            )
        applied = set(await self.applied())
        self.refuse_newer(applied, migrations)
        for migration in migrations:
            if migration.name in applied:
                continue
            async with self.transaction() as conn:
                rows = await conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE name = ?", (migration.name,)
                )
                if rows:
                    continue  # another process applied it meanwhile
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (migration.name, time.time()),
                )
            applied_now.append(migration.name)
        return applied_now

    def refuse_newer(
        self, applied: Iterable[str], migrations: Sequence[Migration] = MIGRATIONS
    ) -> None:
        """DatabaseError when ``applied`` names a migration this version does not know."""
        newer = sorted(set(applied) - {m.name for m in migrations})
        if newer:
            raise DatabaseError(
                f"{self.path} was migrated by a newer version of assistant ({', '.join(newer)}): "
                "upgrade assistant"
            )

    async def applied(self) -> list[str]:
        """Names of the applied migrations, in order."""
        rows = await self.execute("SELECT name FROM schema_migrations ORDER BY name")
        return [str(row[0]) for row in rows]


async def _applied_names(raw: aiosqlite.Connection) -> list[str]:
    try:
        rows = await raw.execute_fetchall("SELECT name FROM schema_migrations")
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return []  # never migrated
        raise
    return [str(row[0]) for row in rows]
