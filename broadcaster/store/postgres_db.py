"""The PostgreSQL connection pool behind the awaitable :class:`~broadcaster.store.sql.Database`.

An asyncpg pool on the caller's own event loop: no bridge thread, no blocking
wait. Every statement has a ``command_timeout``; one that runs past it is
cancelled on the server and raises :class:`~broadcaster.errors.StoreTimeout`
(retryable), never a hang. A dropped connection (a restart, a failover) is
replaced by the pool on the next call; the call that found it broken raises
:class:`~broadcaster.errors.StoreUnavailable`.

A ``postgresql://`` URL never carries a password: it would sit in
channels.toml or a process list. asyncpg reads ``PGPASSWORD`` (or
``~/.pgpass``) instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, Final

import asyncpg

from broadcaster.clock import real_io
from broadcaster.errors import (
    ConfigError,
    IntegrityError,
    StoreConflict,
    StoreFull,
    StoreTimeout,
    StoreUnavailable,
)
from broadcaster.store.sql import WRITERS_LOCK, Database, Dialect, Result, again_on_conflict, numbered
from broadcaster.store.urls import check_url, redact

CONNECT_TIMEOUT_S: Final = 10.0
COMMAND_TIMEOUT_S: Final = 30.0
POOL_MAX: Final = 10
NOW_SQL: Final = "extract(epoch FROM clock_timestamp())::float8"

# What a dropped or refused connection raises (as opposed to a bad statement).
_LOST: Final = (OSError, asyncpg.ConnectionDoesNotExistError, asyncpg.PostgresConnectionError,
                asyncpg.AdminShutdownError, asyncpg.CannotConnectNowError, asyncpg.CrashShutdownError)
# SQLSTATE classes of a server that cannot serve now: connection exception, insufficient
# resources (too many connections), operator intervention (shutting down, starting up).
_UNAVAILABLE_CLASSES: Final = ("08", "53", "57")


@contextmanager
def mapped(where: str) -> Iterator[None]:
    """asyncpg's errors, as the store's own."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(str(exc)) from None
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        raise StoreConflict(f"PostgreSQL ({where}) aborted a transaction: {exc}") from None
    except (TimeoutError, asyncpg.QueryCanceledError) as exc:
        raise StoreTimeout(f"PostgreSQL ({where}) did not answer within the command timeout: {exc}") from None
    except _LOST as exc:
        raise StoreUnavailable(f"lost the connection to PostgreSQL ({where}): {exc}") from None
    except asyncpg.DiskFullError:  # SQLSTATE 53100, in the "insufficient resources" class below
        raise StoreFull(f"PostgreSQL ({where}): database or disk is full: free some space on the database server; "
                        "nothing of this call was kept") from None
    except asyncpg.PostgresError as exc:
        # A new pooled connection refused as the server restarts, or runs out of slots: a passing state.
        if (exc.sqlstate or "")[:2] in _UNAVAILABLE_CLASSES:
            raise StoreUnavailable(f"PostgreSQL ({where}) cannot take the connection now: {exc}") from None
        raise


def _returns_rows(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return head in {"SELECT", "WITH", "VALUES", "SHOW"} or " RETURNING " in sql.upper()


def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


async def run(conn: asyncpg.Connection, sql: str, params: Sequence[Any]) -> Result:
    text = numbered(sql)
    if _returns_rows(text):
        rows = await conn.fetch(text, *params)
        return Result(rows, len(rows))
    return Result([], _rowcount(await conn.execute(text, *params)))


class PgDatabase:
    """:class:`Database` over an asyncpg pool bound to the running loop."""

    dialect: Dialect = "postgresql"
    now_sql = NOW_SQL

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.where = redact(url)

    @classmethod
    async def connect(cls, url: str, *, name: str = "broadcaster", max_size: int = POOL_MAX,
                      command_timeout: float = COMMAND_TIMEOUT_S) -> PgDatabase:
        check_url(url)
        where = redact(url)
        try:
            with real_io():
                pool = await asyncpg.create_pool(
                    url, min_size=1, max_size=max_size, command_timeout=command_timeout,
                    timeout=CONNECT_TIMEOUT_S, server_settings={"application_name": name[:63]})
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConfigError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}", where=where) from None
        return cls(pool, url)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        # One statement is its own transaction: one that lost a deadlock changed nothing and runs again.
        return await again_on_conflict(lambda: self._execute(sql, params))

    async def _execute(self, sql: str, params: Sequence[Any]) -> Result:
        with real_io(), mapped(self.where):
            async with self.pool.acquire() as conn:
                return await run(conn, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with real_io(), mapped(self.where):
            async with self.pool.acquire() as conn:
                await conn.executemany(numbered(sql), list(rows))

    def transaction(self, *, serialized: bool = False) -> AbstractAsyncContextManager[Database]:
        return self._transaction(serialized)

    @asynccontextmanager
    async def _transaction(self, serialized: bool) -> AsyncIterator[Database]:
        with real_io(), mapped(self.where):
            conn = await self.pool.acquire()
        try:
            with real_io(), mapped(self.where):
                tx = conn.transaction()
                await tx.start()
                if serialized:
                    await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITERS_LOCK)
            try:
                yield PgConnection(conn, self.where)
            except BaseException:
                with real_io():
                    try:
                        await tx.rollback()
                    except (asyncpg.PostgresError, *_LOST):
                        pass  # the connection is gone: the server rolled back already
                raise
            with real_io(), mapped(self.where):
                await tx.commit()
        finally:
            with real_io():
                await self.pool.release(conn)

    async def script(self, sql: str) -> None:
        with real_io(), mapped(self.where):
            async with self.pool.acquire() as conn:
                await conn.execute(sql)

    @asynccontextmanager
    async def dedicated(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection held for as long as the block runs (LISTEN)."""
        with real_io(), mapped(self.where):
            conn = await self.pool.acquire()
        try:
            yield conn
        finally:
            with real_io():
                await self.pool.release(conn)

    async def close(self) -> None:
        with real_io():
            try:
                await asyncio.wait_for(self.pool.close(), timeout=10)
            except (TimeoutError, *_LOST):
                self.pool.terminate()


class PgConnection:
    """The database surface on one connection inside one open transaction."""

    dialect: Dialect = "postgresql"
    now_sql = NOW_SQL

    def __init__(self, conn: asyncpg.Connection, where: str) -> None:
        self.raw = conn
        self.where = where

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        with real_io(), mapped(self.where):
            return await run(self.raw, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with real_io(), mapped(self.where):
            await self.raw.executemany(numbered(sql), list(rows))

    def transaction(self, *, serialized: bool = False) -> AbstractAsyncContextManager[Database]:
        return _nested(self)

    async def script(self, sql: str) -> None:
        with real_io(), mapped(self.where):
            await self.raw.execute(sql)

    async def close(self) -> None:
        raise RuntimeError("close the database, not a transaction")


@asynccontextmanager
async def _nested(conn: Database) -> AsyncIterator[Database]:
    yield conn
