"""Where runs are kept: the ``runs`` and ``run_steps`` tables of the SQLite store."""

from __future__ import annotations

import secrets
import time

from broadcaster.app import App
from broadcaster.errors import ConfigError
from broadcaster.store.sqlite import SqliteStore


def run_store(app: App) -> SqliteStore:
    """The app's store, which must be the SQLite one (runs are not in the narrow engine interface yet)."""
    store = app.store
    if not isinstance(store, SqliteStore):
        raise ConfigError("runbook runs need the SQLite store", where=app.database)
    return store


def new_run_id(kind: str, now: float | None = None) -> str:
    """``run-…`` for runbook runs and rehearsals, ``sch-…`` for scheduled fires: never an alert id."""
    prefix = "sch" if kind == "schedule" else "run"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{prefix}-{stamp}-{secrets.token_hex(3)}"


def is_run_id(text: str) -> bool:
    return text.startswith(("run-", "sch-"))
