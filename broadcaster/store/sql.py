"""One small SQL surface over both backends, for code that is not on the hot path.

Statements are written once, in the subset SQLite and PostgreSQL share, with
``?`` placeholders (the PostgreSQL backend numbers them ``$1, $2, …``). Upserts
use ``INSERT … ON CONFLICT DO NOTHING``, which both accept. The delivery hot
path (commit an alert, claim a batch, record outcomes) is written per backend.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]


class IntegrityError(Exception):
    """A statement broke a constraint (a duplicate key, a CHECK, an append-only trigger); nothing changed."""


class StoreUnavailable(Exception):
    """The database could not be reached; the failed call changed nothing. Retry later."""


class Rows(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """What the service, the audit log, runbook runs and the job store use."""

    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Rows: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Statements inside run in one transaction that also serialises writers."""
        ...

    def script(self, sql: str) -> None:
        """Run several ``;``-separated statements (a migration) in the current transaction."""
        ...


class Result:
    """Rows already fetched, with the count of rows a write changed."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)


class SqliteDatabase:
    """:class:`Database` over one sqlite3 connection in autocommit mode."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Rows:
        try:
            return self.conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")  # takes the write lock now: writers queue, never deadlock
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    def script(self, sql: str) -> None:
        # executescript() would commit the open transaction first; split and run one by one.
        pending = ""
        for line in sql.splitlines(keepends=True):
            pending += line
            if sqlite3.complete_statement(pending):
                self.execute(pending)
                pending = ""
        if pending.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()):
            raise ValueError(f"unterminated SQL statement: {pending.strip()[:80]!r}")


def marks(items: Iterable[object]) -> str:
    """``?,?,?``: one placeholder per item, for ``IN (…)``."""
    return ",".join("?" for _ in items)
