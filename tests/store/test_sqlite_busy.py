"""Another connection holding SQLite's write lock is waited for in real time, on a real loop and on a
dry-run's virtual-time loop alike (where ``asyncio.sleep`` would let the whole wait pass at once)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from broadcaster.clock import run_virtual
from broadcaster.errors import StoreUnavailable
from broadcaster.store import sqlite_db
from broadcaster.store.sqlite_db import SqliteDatabase

HOLD_S = 0.4  # how long the other connection keeps the write lock


def hold_write_lock(path: str, held: threading.Event, release: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO t VALUES (1)")
    held.set()
    release.wait(30)
    conn.execute("COMMIT")
    conn.close()


async def write_while_locked(path: str, *, release_after_s: float | None) -> int:
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=hold_write_lock, args=(path, held, release))
    holder.start()
    held.wait(10)
    if release_after_s is not None:
        threading.Timer(release_after_s, release.set).start()
    db = await SqliteDatabase.open(path)
    try:
        await db.execute("INSERT INTO t VALUES (2)")
        return int((await db.execute("SELECT count(*) FROM t")).rows[0][0])
    finally:
        release.set()
        await db.close()
        holder.join()


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "busy.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (n INTEGER)")
    conn.close()
    return path


def test_a_virtual_loop_waits_for_the_lock_in_real_time(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The budget is far longer than the hold in real time, yet a virtual-time sleep would use it up at once.
    monkeypatch.setattr(sqlite_db, "BUSY_WAIT_S", 10.0)
    assert run_virtual(write_while_locked(database, release_after_s=HOLD_S)) == 2


def test_a_real_loop_waits_for_the_lock(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_db, "BUSY_WAIT_S", 10.0)
    assert asyncio.run(write_while_locked(database, release_after_s=HOLD_S)) == 2


def test_a_lock_held_past_the_budget_says_the_store_is_unavailable(database: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_db, "BUSY_WAIT_S", 0.2)
    with pytest.raises(StoreUnavailable, match=r"stayed locked by another connection for 0\.2 s"):
        run_virtual(write_while_locked(database, release_after_s=None))
