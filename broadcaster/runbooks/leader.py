"""Which scheduler host executes jobs: one leader at a time per database.

On PostgreSQL several nodes share one job store, and the leader is whichever
holds a session-level advisory lock (:data:`SCHEDULER_LOCK`) on a connection
of its own. The lock lives exactly as long as that session: if the leader's
process dies, PostgreSQL ends the session and frees the lock, and the next
node that polls takes it. If the leader's lock connection dies while its
process lives, :meth:`PgLeadership.held` says so and the host stops executing
jobs at once. Whoever leads, a job still claims its ``run_steps`` row
(compare-and-set) before it fires, so even two hosts briefly both believing
they lead (a connection the server has not yet noticed is gone) fire a step
once.

On SQLite leadership is always granted (:class:`SoleLeadership`): the file
belongs to one installation on one machine, so every host sharing it is a
local process, which the per-step compare-and-set already keeps from firing a
step twice; and SQLite has no lock that lives with a process other than a
write lock, which would stop every other writer.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Final, Protocol

import asyncpg

from broadcaster.store.base import Store
from broadcaster.store.common import SqlStore
from broadcaster.store.pgconn import Bridge
from broadcaster.store.postgres import PostgresStore

log = logging.getLogger("broadcaster.scheduler")

# A pg_try_advisory_lock key of its own (pgconn.WRITERS_LOCK is "broa"): "brsc", broadcaster scheduler.
SCHEDULER_LOCK: Final = 0x62727363
TIMEOUT_S: Final = 5.0  # a lock connection that does not answer within this is taken for dead

# The advisory lock (bigint key: high half in classid, low half in objid, objsubid 1) in pg_locks.
_LOCK_ROW = ("l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
             " AND ((l.classid::bigint << 32) | l.objid::bigint) = {key}")


class Leadership(Protocol):
    """Scheduler leadership as one host sees it."""

    contested: bool  # False when every host leads (SQLite)

    def try_acquire(self) -> bool:
        """Take leadership if no one holds it; True if this host now leads."""
        ...

    def held(self) -> bool:
        """Whether this host still leads (False once it released, or its lock connection died)."""
        ...

    def release(self) -> None:
        """Give leadership up (another host may take it at once)."""
        ...


class SoleLeadership:
    """SQLite: one file, one machine; every host leads and the run_steps claim keeps fires single."""

    contested = False

    def try_acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass


class PgLeadership:
    """PostgreSQL: a session-level advisory lock held on a dedicated connection of the store's bridge."""

    contested = True

    def __init__(self, bridge: Bridge, name: str, *, key: int = SCHEDULER_LOCK, timeout_s: float = TIMEOUT_S) -> None:
        self.bridge = bridge
        self.name = name  # shown as the lock session's application_name (see scheduler_leader)
        self.key = key
        self.timeout_s = timeout_s
        self._conn: asyncpg.Connection | None = None
        self._held = False

    def try_acquire(self) -> bool:
        if self._held:
            return self.held()
        try:
            self._held = self.bridge.run(self._acquire())
        except Exception as exc:  # cannot connect, or the connection broke: not leading, try again next poll
            log.warning("scheduler leadership: cannot reach PostgreSQL (%s); will try again", exc)
            self._drop()
        return self._held

    async def _acquire(self) -> bool:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self.bridge.connect()
            await self._conn.execute("SELECT set_config('application_name', $1, false)",
                                     f"{self.name} (broadcaster scheduler)"[:63], timeout=self.timeout_s)
        return bool(await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key, timeout=self.timeout_s))

    def held(self) -> bool:
        if not self._held:
            return False
        try:
            still = self.bridge.run(self._check())
        except Exception as exc:  # whatever broke, this host can no longer vouch for the lock
            log.warning("scheduler leadership lost: its PostgreSQL connection failed (%s)", exc)
            still = False
        if not still:
            self._drop()
        return still

    async def _check(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        return bool(await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid() AND {_LOCK_ROW.format(key='$1')})",
            self.key, timeout=self.timeout_s))

    def release(self) -> None:
        """Unlock and close the lock connection (closing alone would free the lock too)."""
        if self._held and self._conn is not None and self.bridge.loop.is_running():
            with suppress(Exception):  # the connection is closed next, which frees the lock anyway
                self.bridge.run(self._conn.execute("SELECT pg_advisory_unlock($1)", self.key, timeout=self.timeout_s))
        self._drop()

    def _drop(self) -> None:
        """Forget the lock and close its connection, whatever state it is in."""
        self._held = False
        conn, self._conn = self._conn, None
        if conn is None or not self.bridge.loop.is_running():
            return

        async def close() -> None:
            try:
                await conn.close(timeout=self.timeout_s)
            except Exception:  # a dead connection may not close cleanly: cut it
                conn.terminate()

        with suppress(RuntimeError):
            self.bridge.run(close())


def leadership_for(store: Store | SqlStore, name: str) -> Leadership:
    """How the host named ``name`` (its owner tag) leads over ``store``."""
    if isinstance(store, PostgresStore):
        return PgLeadership(store.bridge, name)
    return SoleLeadership()


def scheduler_leader(store: Store | SqlStore) -> str | None:
    """The owner tag of the host leading the scheduler on this PostgreSQL database (None: none, or SQLite).

    Read from the ``application_name`` of the session holding the lock, which
    PostgreSQL cuts at 63 bytes: a host name over ~45 characters shortens the tag.
    """
    if not isinstance(store, PostgresStore):
        return None
    row = store.db.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f" AND {_LOCK_ROW.format(key='?')}",
        (SCHEDULER_LOCK,),
    ).fetchone()
    if row is None or not row[0]:
        return None
    return str(row[0]).split(" ", 1)[0]
