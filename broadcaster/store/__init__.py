"""Durable state: alerts, deliveries and every attempt. SQLite now; the interface admits PostgreSQL."""

from broadcaster.store.base import (
    AlertRecord,
    AttemptRow,
    Claimed,
    DeliveryRow,
    MessageRecord,
    NewDelivery,
    Outcome,
    Store,
)
from broadcaster.store.sqlite import SqliteStore

__all__ = [
    "AlertRecord",
    "AttemptRow",
    "Claimed",
    "DeliveryRow",
    "MessageRecord",
    "NewDelivery",
    "Outcome",
    "SqliteStore",
    "Store",
    "open_store",
]


def open_store(database: str) -> Store:
    """Open the store named by ``database`` (a file path for SQLite)."""
    if database.startswith(("postgres://", "postgresql://")):
        from broadcaster.errors import ConfigError

        raise ConfigError("the PostgreSQL backend is not built yet; use a SQLite path", where="database")
    return SqliteStore(database)
