"""Back the database up, and put a backup back: the rules, whichever face asks.

A restore never lands on a database that is in use: a node that beat within the
dead-after window, or a live process on this host holding deliveries, makes it
refuse (stop ``serve``, ``worker`` and any ``fire`` first). What was open in the
backup is reconciled by ``resume`` afterwards (see :mod:`broadcaster.store.backup`).
"""

from __future__ import annotations

import time
from pathlib import Path

from broadcaster.audit import AuditLog
from broadcaster.clock import in_thread
from broadcaster.engine.node import DEAD_AFTER_S
from broadcaster.errors import InputError
from broadcaster.store import is_postgres_url, opened, owner_is_dead
from broadcaster.store.backup import Restored, Summary, backup_postgres, backup_sqlite, restore_sqlite
from broadcaster.store.urls import redact

NEXT_STEPS = (
    "broadcaster audit verify   # the restored audit chain and the alerts anchored to it",
    "broadcaster resume         # deliveries open in the backup: reconciled with the provider before any resend",
)


async def backup(database: str, dest: Path, *, overwrite: bool = False) -> Summary | None:
    """Back ``database`` up to ``dest``: SQLite's online backup, or ``pg_dump`` (then None: no summary)."""
    if is_postgres_url(database):
        await backup_postgres(database, dest, overwrite=overwrite)
        return None
    return await backup_sqlite(database, dest, overwrite=overwrite)


async def users_of(database: str) -> list[str]:
    """Who is using the SQLite ``database`` now: live nodes and live lease holders (empty when none)."""
    if database == ":memory:" or not await in_thread(Path(database).is_file):
        return []
    async with opened(database) as store:
        nodes = [n.id for n in await store.nodes.recent(DEAD_AFTER_S) if n.stopped_at is None]
        owners = [o for o in await store.leases.owners() if not owner_is_dead(o)]
    return sorted({*nodes, *owners})


async def restore(backup_file: Path, database: str, *, overwrite: bool, actor: str) -> Restored:
    """Put ``backup_file`` in place of the SQLite ``database`` (PostgreSQL: ``pg_restore``, see the README).

    The restored audit log gains a ``database_restore`` row (who, from which file, what was made unknown).
    """
    if is_postgres_url(database):
        raise InputError("a PostgreSQL database is restored with pg_restore (README, Backups), then "
                         "`broadcaster db upgrade`, `audit verify` and `resume`", where=redact(database))
    if database == ":memory:":
        raise InputError("an in-memory database cannot be restored into", where="database")
    if await in_thread(Path(database).exists):
        if not overwrite:
            raise InputError("a database is there already: pass --yes to replace it with the backup", where=database)
        busy = await users_of(database)
        if busy:
            raise InputError(f"the database is in use by {', '.join(busy)}: stop serve, worker and fire first "
                             f"(a node counts as gone {DEAD_AFTER_S:.0f} s after its last heartbeat)", where=database)
    restored = await restore_sqlite(backup_file, database)
    async with opened(database) as store:
        await AuditLog(store.db).append(actor, "database_restore", {
            "backup": backup_file.name, "alerts": restored.summary.alerts,
            "deliveries": restored.summary.deliveries, "made_unknown": restored.made_unknown,
        }, now=time.time())
    return restored
