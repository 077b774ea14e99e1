"""The SQLite connection behind the awaitable :class:`~broadcaster.store.sql.Database`.

SQLite answers a short statement in microseconds, so statements run inline on
the event loop; the callers that could take longer (committing a 100,000-row
outbox, reading a long log) work in chunks and yield between them.

One connection serves one event loop: an ``asyncio.Lock`` keeps a transaction's
statements together while other tasks wait their turn without blocking the
loop. Another *process* holding the write lock is never waited for inside
SQLite (``busy_timeout = 0``, which would sleep on the loop): a locked database
is retried after a real-time pause instead, for up to :data:`BUSY_WAIT_S` of real time
(also on a dry-run's virtual-time loop, whose ``asyncio.sleep`` would not wait at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from broadcaster.clock import in_thread, real_sleep
from broadcaster.errors import InputError, IntegrityError, StoreError, StoreFull, StoreUnavailable
from broadcaster.store.sql import Database, Dialect, Result

T = TypeVar("T")

BUSY_WAIT_S: Final = 30.0
_BUSY_FIRST_S: Final = 0.001
_BUSY_MAX_S: Final = 0.05
NOW_SQL: Final = "((julianday('now') - 2440587.5) * 86400.0)"
# SQLite's primary result codes (https://sqlite.org/rescode.html)
_SQLITE_BUSY: Final = 5
_SQLITE_IOERR: Final = 10
_SQLITE_FULL: Final = 13


class SqliteDatabase:
    """:class:`Database` over one sqlite3 connection in autocommit mode (WAL)."""

    dialect: Dialect = "sqlite"
    now_sql = NOW_SQL

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self.where = path
        self.conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        """Connect on a worker thread: switching to WAL may wait for another process's lock."""
        return cls(path, await in_thread(_connect, path))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        async with self._lock:
            return await self._retry(lambda: self._run(sql, params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._lock:
            await self._retry(lambda: self._many(sql, rows))

    def transaction(self, *, serialized: bool = False) -> AbstractAsyncContextManager[Database]:
        # Every SQLite write transaction is serialised already: BEGIN IMMEDIATE takes the write lock.
        return self._transaction()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Database]:
        async with self._lock:
            await self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))
            try:
                yield _Transaction(self)
            except BaseException:
                self._rollback()
                raise
            try:
                self._guard(lambda: self.conn.execute("COMMIT"))
            except BaseException:
                self._rollback()
                raise

    async def script(self, sql: str) -> None:
        async with self._lock:
            self._script(sql)

    async def close(self) -> None:
        self.conn.close()

    # --- inline work, under the lock ---------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any]) -> Result:
        cursor = self.conn.execute(sql, params)
        if cursor.description is None:
            return Result([], cursor.rowcount)
        rows = cursor.fetchall()
        return Result(rows, len(rows))

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def _script(self, sql: str) -> None:
        # executescript() would commit the open transaction first; split and run one by one.
        pending = ""
        for line in sql.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                self._guard(partial(self.conn.execute, pending))
                pending = ""
        if pending.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()):
            raise ValueError(f"unterminated SQL statement: {pending.strip()[:80]!r}")

    def _rollback(self) -> None:
        """End the open transaction; never let a failed ROLLBACK hide the error that led here.

        After SQLITE_FULL or SQLITE_IOERR, SQLite has often rolled the transaction back itself, and
        ROLLBACK then fails with "cannot rollback - no transaction is active" instead of the cause.
        """
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the transaction is gone either way: nothing of it was kept
                self.conn.execute("ROLLBACK")

    async def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn``; while another connection holds the write lock, pause (real time) and try again."""
        deadline, pause = time.monotonic() + BUSY_WAIT_S, _BUSY_FIRST_S
        while True:
            try:
                return self._guard(fn)
            except _Busy:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(f"{self.where}: the database stayed locked by another connection "
                                           f"for {BUSY_WAIT_S:g} s") from None
                await real_sleep(pause)
                pause = min(_BUSY_MAX_S, pause * 2)

    def _guard(self, fn: Callable[[], T]) -> T:
        """``fn()``, with sqlite3's errors turned into the store's own."""
        try:
            return fn()
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from None
        except sqlite3.OperationalError as exc:
            text = str(exc)
            code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # the primary code of an extended one
            if code == _SQLITE_BUSY or "database is locked" in text or "database is busy" in text:
                raise _Busy from None
            if code == _SQLITE_FULL or "disk is full" in text:
                raise StoreFull(f"{self.where}: database or disk is full: free some space; nothing of this call "
                                "was kept") from None
            if code == _SQLITE_IOERR or "disk I/O error" in text:
                raise StoreError(f"{self.where}: disk I/O error ({text}): check the disk; nothing of this call "
                                 "was kept") from None
            raise


def _connect(path: str) -> sqlite3.Connection:
    if path != ":memory:":
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the database folder: {exc.strerror}", where=path) from None
    try:
        # Waiting for a lock is fine here, off the loop; once open, a locked database is waited for
        # with asyncio.sleep instead (busy_timeout = 0).
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_WAIT_S)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (kill -9); only power loss
        # can lose the last transactions, and those are reconciled like a crash.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=0")
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the database: {exc}", where=path) from None
    return conn


class _Busy(Exception):
    """SQLITE_BUSY: another connection holds the lock this statement needs."""


class _Transaction:
    """The database surface inside one open SQLite transaction (the connection's lock is held)."""

    dialect: Dialect = "sqlite"
    now_sql = NOW_SQL

    def __init__(self, owner: SqliteDatabase) -> None:
        self.owner = owner
        self.where = owner.where

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        return self.owner._guard(lambda: self.owner._run(sql, params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.owner._guard(lambda: self.owner._many(sql, rows))

    def transaction(self, *, serialized: bool = False) -> AbstractAsyncContextManager[Database]:
        return _nested(self)

    async def script(self, sql: str) -> None:
        self.owner._script(sql)

    async def close(self) -> None:
        raise RuntimeError("close the database, not a transaction")

    @property
    def conn(self) -> sqlite3.Connection:
        return self.owner.conn


@asynccontextmanager
async def _nested(tx: Database) -> AsyncIterator[Database]:
    yield tx
