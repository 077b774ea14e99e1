"""Durable state: alerts, deliveries and every attempt. SQLite by default, PostgreSQL for several nodes."""

from broadcaster.store.base import (
    AlertRecord,
    AttemptRow,
    Claimed,
    DeliveryRow,
    MessageRecord,
    NewDelivery,
    NodeRow,
    Outcome,
    Store,
)
from broadcaster.store.migrate import Migration, current, upgrade
from broadcaster.store.pgconn import is_postgres_url
from broadcaster.store.sqlite import SqliteStore

__all__ = [
    "AlertRecord",
    "AttemptRow",
    "Claimed",
    "DeliveryRow",
    "MessageRecord",
    "NewDelivery",
    "NodeRow",
    "Outcome",
    "SqliteStore",
    "Store",
    "is_postgres_url",
    "open_store",
    "upgrade_database",
]


def open_store(database: str, *, require_schema: bool = True) -> Store:
    """Open the store named by ``database``: a ``postgresql://`` URL, else a SQLite file path.

    A PostgreSQL schema older than this code is refused (``broadcaster db upgrade``
    brings it up to date) unless ``require_schema`` is False, as for that command.
    """
    if is_postgres_url(database):
        from broadcaster.store.postgres import PostgresStore

        return PostgresStore(database, require_schema=require_schema)
    return SqliteStore(database)


def upgrade_database(database: str) -> tuple[int, list[Migration]]:
    """Apply the migrations ``database`` lacks (``broadcaster db upgrade``): (version before, applied)."""
    store = open_store(database, require_schema=False)
    try:
        db = store.db  # type: ignore[attr-defined]
        return current(db), upgrade(db)
    finally:
        store.close()
