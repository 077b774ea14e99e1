"""What every command needs: the checked config, the catalogue and the store."""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from broadcaster.audit import AuditLog
from broadcaster.channels.registry import KINDS
from broadcaster.config import Config, load_config
from broadcaster.store import Store, open_store
from broadcaster.store.sql import Database
from broadcaster.templates.catalogue import Catalogue

DEFAULT_CONFIG = "channels.toml"


@runtime_checkable
class _HasDatabase(Protocol):
    """A store that keeps its rows in SQL (SQLite or PostgreSQL) and offers the shared :class:`Database` surface."""

    db: Database


def database_of(store: Store) -> Database | None:
    """The store's :class:`Database` (users, the audit log, receipts live there), or None for a store without one."""
    return store.db if isinstance(store, _HasDatabase) else None


@dataclass
class App:
    config: Config
    catalogue: Catalogue
    database: str
    _store: Store | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.database)
        return self._store

    def audit(self, action: str, detail: Mapping[str, Any], *, actor: str | None = None) -> None:
        """Append to the hash-chained audit log; from the CLI the actor is the shell user."""
        db = database_of(self.store)
        if db is not None:
            AuditLog(db).append(actor or f"cli:{getpass.getuser()}", action, detail, now=time.time())

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def load_app(config_path: str | None = None, database: str | None = None) -> App:
    """``--config`` / ``BROADCASTER_CONFIG`` and ``--db`` / ``BROADCASTER_DB`` win over channels.toml."""
    path = config_path or os.environ.get("BROADCASTER_CONFIG") or DEFAULT_CONFIG
    config = load_config(Path(path), KINDS)
    db = database or os.environ.get("BROADCASTER_DB") or config.database
    app = App(config=config, catalogue=Catalogue(config.templates_dir), database=db)
    if _COMMANDS:
        _COMMANDS[-1].append(app)
    return app


_COMMANDS: list[list[App]] = []  # per running command (innermost last): the apps it loaded


@contextmanager
def closing_apps() -> Iterator[None]:
    """Every app loaded inside the block has its store closed when the block ends (one CLI command)."""
    opened: list[App] = []
    _COMMANDS.append(opened)
    try:
        yield
    finally:
        del _COMMANDS[next(i for i, apps in enumerate(_COMMANDS) if apps is opened)]
        for app in reversed(opened):
            app.close()
