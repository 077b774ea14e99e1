"""One small, awaitable SQL surface over both backends.

Statements are written once, in the subset SQLite and PostgreSQL share, with
``?`` placeholders (the PostgreSQL backend numbers them ``$1, $2, …``), and
always name their columns. Rows are read by column name (``row["state"]``),
never by position, so a migration that adds a column shifts nothing.

:meth:`Database.transaction` yields the same surface bound to one connection
inside one transaction; ``serialized=True`` also makes writers queue behind one
another across processes (SQLite's write lock is already that; PostgreSQL takes
an advisory transaction lock), for read-then-write sequences such as the audit
chain's head.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from functools import lru_cache
from typing import Any, Final, Literal, Protocol, TypeVar

from broadcaster.errors import StoreConflict

T = TypeVar("T")
CONFLICT_TRIES: Final = 5

Dialect = Literal["sqlite", "postgresql"]

# pg_advisory_xact_lock key a serialized PostgreSQL transaction takes ("broa").
WRITERS_LOCK: Final = 0x62726F61


class Result:
    """Rows already fetched (each readable by column name), with the count of rows a write changed."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def one(self) -> Any | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        """The first column of the first row, or None."""
        return self.rows[0][0] if self.rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class Database(Protocol):
    """What every store component speaks: awaited statements and transactions."""

    dialect: Dialect
    where: str  # names the database in errors, never with a password
    now_sql: str  # an SQL expression for the database's clock, in unix seconds

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Result: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def transaction(self, *, serialized: bool = False) -> AbstractAsyncContextManager[Database]:
        """One transaction on one connection; the yielded surface runs its statements inside it."""
        ...

    async def script(self, sql: str) -> None:
        """Several ``;``-separated statements (a migration), inside the current transaction."""
        ...

    async def close(self) -> None: ...


def marks(items: Iterable[object]) -> str:
    """``?,?,?``: one placeholder per item, for ``IN (…)``; ``NULL`` for none (matches nothing)."""
    return ",".join("?" for _ in items) or "NULL"


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?")


@lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """``?`` placeholders become ``$1, $2, …`` (outside string literals), for PostgreSQL."""
    counter = iter(range(1, 100_000))

    def swap(match: re.Match[str]) -> str:
        return match.group(0) if match.group(0) != "?" else f"${next(counter)}"

    return _PLACEHOLDER.sub(swap, sql)


async def again_on_conflict(work: Callable[[], Awaitable[T]]) -> T:
    """``work()``, run again (a few times, after a short random pause) if the database broke a deadlock with it.

    Only for work that changed nothing when it failed: one statement, or one
    whole transaction (:func:`atomically`).
    """
    for attempt in range(1, CONFLICT_TRIES + 1):
        try:
            return await work()
        except StoreConflict:
            if attempt == CONFLICT_TRIES:
                raise
            await asyncio.sleep(random.uniform(0, 0.01 * attempt))
    raise AssertionError("unreachable")


async def atomically(db: Database, work: Callable[[Database], Awaitable[T]], *, serialized: bool = False) -> T:
    """``work(tx)`` inside one transaction, run again whole if the database aborted it to break a deadlock."""

    async def once() -> T:
        async with db.transaction(serialized=serialized) as tx:
            return await work(tx)

    return await again_on_conflict(once)
