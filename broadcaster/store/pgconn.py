"""asyncpg connections behind the store's synchronous calls.

The store interface is synchronous (SQLite answers in microseconds), so the
PostgreSQL backend runs asyncpg on an event loop of its own, on one thread, and
each store call waits for its coroutine there. Calls are serialised on one
connection, like the SQLite backend's; LISTEN and the scheduler's advisory lock
get connections of their own, since each must outlive any single call.

A ``postgresql://`` URL never carries a password: it would sit in channels.toml
or a process list. asyncpg reads ``PGPASSWORD`` (or ``~/.pgpass``) instead.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg

from broadcaster.errors import ConfigError
from broadcaster.store.sql import Dialect, IntegrityError, Result, Rows, StoreUnavailable

T = TypeVar("T")

# pg_advisory_xact_lock key that Database.transaction() takes: writers serialise as on SQLite.
WRITERS_LOCK = 0x62726F61  # "broa"
CONNECT_TIMEOUT_S = 10.0


def is_postgres_url(database: str) -> bool:
    return database.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without user info beyond the user name (safe for logs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.password is not None:
        raise ConfigError("the PostgreSQL URL must not contain a password: set PGPASSWORD "
                          "(or use ~/.pgpass) in the node's environment", where=redact(url))
    if not parts.path.strip("/"):
        raise ConfigError("the PostgreSQL URL names no database (postgresql://user@host:port/DBNAME)",
                          where=redact(url))


class Bridge:
    """One event loop thread that owns this process's PostgreSQL connections."""

    def __init__(self, url: str) -> None:
        check_url(url)
        self.url = url
        self.where = redact(url)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="postgres", daemon=True)
        self._thread.start()
        self.lock = threading.RLock()
        self._opened: list[asyncpg.Connection] = []
        try:
            self.conn: asyncpg.Connection = self.run(self.connect())
        except BaseException:
            self._stop_loop()
            raise

    async def connect(self) -> asyncpg.Connection:
        """A new connection (on the bridge loop): the main one, a listener, a lock holder.

        Every connection it opens is closed with the bridge.
        """
        try:
            conn = await asyncpg.connect(self.url, timeout=CONNECT_TIMEOUT_S,
                                         server_settings={"application_name": "broadcaster"})
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise ConfigError(f"cannot connect to PostgreSQL: {exc}", where=self.where) from None
        self._opened.append(conn)
        return conn

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the bridge loop and wait for it (never from the bridge thread itself)."""
        try:
            self._not_on_bridge_thread()
        except RuntimeError:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def _not_on_bridge_thread(self) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking store call from the PostgreSQL thread would deadlock")

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``fn(conn, *args)`` on the main connection, one call at a time.

        A connection the server dropped (a restart, a failover) is replaced on the
        next call; the call that found it broken raises :class:`StoreUnavailable`.
        """
        async def invoke() -> T:
            try:
                if self.conn.is_closed():
                    self._opened = [c for c in self._opened if not c.is_closed()]
                    self.conn = await self.connect()
                return await fn(self.conn, *args)
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise IntegrityError(str(exc)) from None
            except _LOST as exc:
                raise StoreUnavailable(f"lost the connection to PostgreSQL ({self.where}): {exc}") from None
            except ConfigError as exc:  # could not reconnect
                raise StoreUnavailable(str(exc)) from None

        self._not_on_bridge_thread()
        with self.lock:
            return self.run(invoke())

    def listen(self, channel: str, callback: Callable[[str], None]) -> Callable[[], None]:
        """LISTEN on a connection of its own; ``callback(payload)`` runs on the bridge thread.

        Returns a function that stops listening and closes that connection.
        """
        async def start() -> asyncpg.Connection:
            conn = await self.connect()
            await conn.add_listener(channel, lambda _conn, _pid, _channel, payload: callback(payload))
            return conn

        conn = self.run(start())

        def stop() -> None:
            if not self.loop.is_closed():
                with suppress(TimeoutError, OSError, asyncpg.PostgresError):
                    self.run(conn.close(timeout=5))

        return stop

    def close(self) -> None:
        if self.loop.is_closed():
            return
        with self.lock:
            for conn in self._opened:  # the main one, listeners, lock holders
                if not conn.is_closed():
                    # Closing a connection the server already dropped is not an error.
                    with suppress(TimeoutError, OSError, asyncpg.PostgresError):
                        self.run(conn.close(timeout=5))
        self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


# What a dropped or refused connection raises (as opposed to a bad statement).
_LOST = (OSError, asyncpg.ConnectionDoesNotExistError, asyncpg.PostgresConnectionError,
         asyncpg.AdminShutdownError, asyncpg.CannotConnectNowError, asyncpg.CrashShutdownError)

_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?")


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders become ``$1, $2, …`` (outside string literals)."""
    counter = iter(range(1, 10_000))

    def swap(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0) != "?" else f"${next(counter)}"

    return _PLACEHOLDER.sub(swap, sql)


def _returns_rows(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return head in {"SELECT", "WITH", "VALUES", "SHOW"} or " RETURNING " in sql.upper()


def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class PgDatabase:
    """:class:`broadcaster.store.sql.Database` on the bridge's main connection."""

    dialect: Dialect = "postgresql"

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        text = numbered(sql)

        async def run(conn: asyncpg.Connection) -> Result:
            if _returns_rows(text):
                rows = [tuple(r) for r in await conn.fetch(text, *params)]
                return Result(rows, len(rows))
            return Result([], _rowcount(await conn.execute(text, *params)))

        return self.bridge.call(run)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Rows:
        text = numbered(sql)

        async def run(conn: asyncpg.Connection) -> Result:
            await conn.executemany(text, list(rows))
            return Result([], -1)

        return self.bridge.call(run)

    def script(self, sql: str) -> None:
        async def run(conn: asyncpg.Connection) -> None:
            await conn.execute(sql)

        self.bridge.call(run)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self.bridge.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.execute("BEGIN")
            self._depth = 1
            try:
                self.execute("SELECT pg_advisory_xact_lock(?)", (WRITERS_LOCK,))
                yield
            except BaseException:
                self._depth = 0
                self.execute("ROLLBACK")
                raise
            self._depth = 0
            self.execute("COMMIT")

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()
