"""Versioned schema migrations, one numbered SQL file per change and backend.

``broadcaster db upgrade`` applies what is missing, each file in one transaction
with its row in ``schema_migrations``; two nodes upgrading at once serialise on
the transaction's lock, and the second finds nothing left to do. SQLite, a file
owned by one installation, is also upgraded when it is opened; PostgreSQL,
shared by several nodes, only by the explicit command, and a node refuses to
start on a schema older than its code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources

from broadcaster.errors import ConfigError
from broadcaster.store.sql import Database, Dialect

_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available(dialect: Dialect) -> list[Migration]:
    """Every migration shipped for ``dialect``, oldest first."""
    folder = resources.files("broadcaster.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        stem, dot, ext = entry.name.partition(".")
        number, _, name = stem.partition("_")
        if dot and ext == "sql" and number.isdigit():
            found.append(Migration(int(number), name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def latest(dialect: Dialect) -> int:
    return available(dialect)[-1].version


async def current(db: Database) -> int:
    """The newest version applied to ``db`` (0 for an empty database)."""
    if db.dialect == "sqlite":
        exists = await db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    else:
        exists = await db.execute("SELECT 1 FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?",
                                  ("schema_migrations",))
    if exists.one() is None:
        return 0
    version = (await db.execute("SELECT MAX(version) AS version FROM schema_migrations")).scalar()
    return int(version) if version is not None else 0


async def upgrade(db: Database, *, now: float | None = None) -> list[Migration]:
    """Apply every missing migration; returns those applied (none when up to date)."""
    applied: list[Migration] = []
    await db.execute(_LEDGER)
    async with db.transaction(serialized=True) as tx:
        have = await current(tx)
        if have > latest(db.dialect):
            raise _newer(have, db.dialect)
        for migration in available(db.dialect):
            if migration.version <= have:
                continue
            await tx.script(migration.sql)
            await tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                             (migration.version, migration.name, time.time() if now is None else now))
            applied.append(migration)
    return applied


async def require_current(db: Database, where: str) -> None:
    """Refuse to run code against a schema other than the one it was written for."""
    have, want = await current(db), latest(db.dialect)
    if have > want:
        raise _newer(have, db.dialect, where)
    if have < want:
        raise ConfigError(
            f"the database schema is at version {have}, this broadcaster needs {want}: "
            f"run `broadcaster db upgrade` first", where=where)


def _newer(have: int, dialect: Dialect, where: str = "database") -> ConfigError:
    return ConfigError(f"the database schema (version {have}) is newer than this broadcaster "
                       f"({latest(dialect)}): upgrade the program, not the database", where=where)
