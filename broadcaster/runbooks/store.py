"""Where runs are kept: the ``runs`` and ``run_steps`` tables of the store (SQLite or PostgreSQL)."""

from __future__ import annotations

import secrets
import time

from broadcaster.app import App
from broadcaster.errors import ConfigError
from broadcaster.store.common import SqlStore


def run_store(app: App) -> SqlStore:
    """The app's store as a SQL store, which keeps runs (they are not in the narrow engine interface)."""
    store = app.store
    if not isinstance(store, SqlStore):
        raise ConfigError("runbook runs need a SQL store (SQLite or PostgreSQL)", where=app.database)
    return store


def new_run_id(kind: str, now: float | None = None) -> str:
    """``run-…`` for runbook runs and rehearsals, ``sch-…`` for scheduled fires: never an alert id."""
    prefix = "sch" if kind == "schedule" else "run"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{prefix}-{stamp}-{secrets.token_hex(3)}"


def is_run_id(text: str) -> bool:
    return text.startswith(("run-", "sch-"))
