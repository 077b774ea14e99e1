"""Durable state: alerts, deliveries and every attempt. SQLite by default, PostgreSQL for several nodes.

``store = await open_store(database)`` gives a :class:`Store`: one bundle of the
narrow interfaces in :mod:`broadcaster.store.ports`, all on one connection (or
pool) opened on the running event loop. Close it with ``await store.close()``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from broadcaster.store.leadership import SqlLeadership
from broadcaster.store.migrate import Migration, current, require_current, upgrade
from broadcaster.store.nodes import SqlNodes
from broadcaster.store.pending import SqlPending
from broadcaster.store.ports import Alerts, Leadership, Leases, Nodes, Runs, Slots, Wakeups
from broadcaster.store.receipts import SqlReceipts
from broadcaster.store.runs import SqlRuns
from broadcaster.store.seals import SqlSeals
from broadcaster.store.slots import SqlSlots
from broadcaster.store.sql import Database
from broadcaster.store.urls import address, is_postgres_url

__all__ = ["Store", "address_of", "is_postgres_url", "open_store", "opened", "owner_is_dead", "upgrade_database"]


class _Polling:
    """SQLite: one installation on one machine; idle workers look again every poll instead."""

    @contextlib.asynccontextmanager
    async def listening(self, wake: Callable[[list[str] | None], None]) -> AsyncIterator[None]:
        yield


@dataclass
class Store:
    """Every store interface over one database."""

    db: Database  # the portable SQL surface (users, the audit chain, receipts, pending fires)
    alerts: Alerts
    leases: Leases
    slots: Slots
    runs: Runs
    nodes: Nodes
    leadership: Leadership
    wakeups: Wakeups
    pending: SqlPending  # two-person fires waiting for a second officer
    receipts: SqlReceipts  # Twilio delivery receipts
    seals: SqlSeals  # what the audit anchors read, and the seal of each finished alert

    @property
    def where(self) -> str:
        return self.db.where

    async def close(self) -> None:
        await self.db.close()


async def open_store(database: str, *, require_schema: bool = True, name: str = "broadcaster") -> Store:
    """Open the store named by ``database``: a ``postgresql://`` URL, else a SQLite file path.

    SQLite is brought up to date as it opens (one file, one installation). A
    PostgreSQL schema older than this code is refused (``broadcaster db
    upgrade`` brings it up to date) unless ``require_schema`` is False.
    """
    if is_postgres_url(database):
        from broadcaster.store.postgres import PgAlerts, PgLeases, PgWakeups
        from broadcaster.store.postgres_db import PgDatabase

        pg = await PgDatabase.connect(database, name=name)
        try:
            if require_schema:
                await require_current(pg, pg.where)
        except BaseException:
            await pg.close()
            raise
        return Store(pg, PgAlerts(pg), PgLeases(pg), SqlSlots(pg), SqlRuns(pg), SqlNodes(pg), SqlLeadership(pg),
                     PgWakeups(pg), SqlPending(pg), SqlReceipts(pg), SqlSeals(pg))
    from broadcaster.store.sqlite import SqliteAlerts, SqliteLeases
    from broadcaster.store.sqlite_db import SqliteDatabase

    lite = await SqliteDatabase.open(database)
    try:
        await upgrade(lite)
    except BaseException:
        await lite.close()
        raise
    return Store(lite, SqliteAlerts(lite), SqliteLeases(lite), SqlSlots(lite), SqlRuns(lite), SqlNodes(lite),
                 SqlLeadership(lite), _Polling(), SqlPending(lite), SqlReceipts(lite), SqlSeals(lite))


@contextlib.asynccontextmanager
async def opened(database: str, *, require_schema: bool = True, name: str = "broadcaster") -> AsyncIterator[Store]:
    """``async with opened(database) as store``: open, then close whatever happens."""
    store = await open_store(database, require_schema=require_schema, name=name)
    try:
        yield store
    finally:
        await store.close()


async def upgrade_database(database: str) -> tuple[int, list[Migration]]:
    """Apply the migrations ``database`` lacks (``broadcaster db upgrade``): (version before, applied)."""
    async with opened(database, require_schema=False) as store:
        return await current(store.db), await upgrade(store.db)


def address_of(database: str) -> tuple[str, int] | None:
    """The network address a database lives at (None for a SQLite file): a dry-run may reach only this."""
    return address(database) if is_postgres_url(database) else None


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` ("host:pid:token") names a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != os.uname().nodename or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
