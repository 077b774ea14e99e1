"""Backups of the database, and putting one back (``broadcaster db backup|restore``).

SQLite runs in WAL mode: the newest transactions live in the ``-wal`` file until
a checkpoint, so copying the database file alone (or the two files one after
the other) can give a torn, inconsistent copy. :func:`backup_sqlite` uses
SQLite's online backup API instead, in one step: it reads one consistent
snapshot while ``serve``, ``worker`` and ``fire`` go on writing (in WAL mode a
reader blocks no writer), on a worker thread, off the event loop. The copy is
one self-contained file (journal mode DELETE, no ``-wal`` beside it).

PostgreSQL is backed up by ``pg_dump`` (custom format, for ``pg_restore``); the
URL never holds a password (``PGPASSWORD`` or ``~/.pgpass`` reach the child
through its environment), and only the redacted URL is ever printed.

A backup is behind the world: deliveries still open in it (pending, sending)
may have gone out after it was taken. :func:`restore_sqlite` therefore turns
every open delivery of a live or exercise alert into ``unknown``, so ``resume``
asks the provider before any resend (Twilio), or resends or holds as the channel
says (``on_unknown``) where the provider cannot be asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from broadcaster.clock import in_thread
from broadcaster.errors import InputError, StoreError
from broadcaster.states import DeliveryState, Mode, Outcome
from broadcaster.store.migrate import latest
from broadcaster.store.urls import redact

_TABLES: Final = ("schema_migrations", "alerts", "messages", "deliveries", "attempts", "audit")
_OPEN: Final = (DeliveryState.PENDING, DeliveryState.SENDING)
RESTORED_DETAIL: Final = "restored from a backup: it may have gone out after the backup was taken"


@dataclass(frozen=True, slots=True)
class Summary:
    """What a backup holds: its schema version and how many alerts and deliveries."""

    schema: int
    alerts: int
    deliveries: int
    open_deliveries: int  # pending or sending when the backup was taken


@dataclass(frozen=True, slots=True)
class Restored:
    summary: Summary
    made_unknown: int  # open deliveries of live/exercise alerts, now reconciled before any resend


async def backup_sqlite(database: str, dest: Path, *, overwrite: bool = False) -> Summary:
    """A consistent copy of the SQLite ``database`` at ``dest``, taken while others may be writing."""
    return await in_thread(_backup, database, dest, overwrite)


def _writable(dest: Path, overwrite: bool) -> None:
    if dest.exists() and not overwrite:
        raise InputError("the backup file exists already; choose another name or pass --yes to overwrite",
                         where=str(dest))
    if not dest.parent.is_dir():
        raise InputError("the folder for the backup does not exist", where=str(dest.parent))


def _backup(database: str, dest: Path, overwrite: bool) -> Summary:
    if not Path(database).is_file():
        raise InputError("no database file here to back up", where=database)
    _writable(dest, overwrite)
    partial = dest.with_name(f".{dest.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        source = sqlite3.connect(_read_only(database), uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        raise StoreError(f"{database}: cannot open the database to back it up: {exc}") from None
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target)  # one step: one consistent snapshot; writers are not blocked in WAL mode
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            summary = _summary(target, str(dest))
        finally:
            target.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"{database}: the backup failed: {exc}; nothing was written to {dest}") from None
    finally:
        source.close()
    os.replace(partial, dest)
    return summary


async def backup_postgres(url: str, dest: Path, *, overwrite: bool = False) -> None:
    """``pg_dump --format=custom`` of the database at ``url`` into ``dest``."""
    pg_dump = shutil.which("pg_dump")
    where = redact(url)
    if pg_dump is None:
        raise InputError("pg_dump is not on PATH: install the PostgreSQL client tools (apt-get install "
                         "postgresql-client), or run pg_dump --format=custom yourself (README, Backups)", where=where)
    await in_thread(_writable, dest, overwrite)
    partial = dest.with_name(f".{dest.name}.partial")
    process = await asyncio.create_subprocess_exec(
        pg_dump, "--format=custom", "--no-owner", f"--file={partial}", f"--dbname={url}",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    if process.returncode != 0:
        partial.unlink(missing_ok=True)
        said = stderr.decode("utf-8", "replace").strip().replace(url, where)
        raise StoreError(f"{where}: pg_dump failed (exit {process.returncode}): {said[-500:]}")
    os.replace(partial, dest)


async def check_backup(path: Path) -> Summary:
    """``path`` is a broadcaster SQLite database with this program's migrations, and intact."""
    return await in_thread(_check, path)


def _check(path: Path) -> Summary:
    if not path.is_file():
        raise InputError("no backup file here", where=str(path))
    try:
        conn = sqlite3.connect(_read_only(path), uri=True)
    except sqlite3.Error as exc:
        raise InputError(f"cannot open the backup: {exc}", where=str(path)) from None
    try:
        return _summary(conn, str(path))
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a SQLite database ({exc})", where=str(path)) from None
    finally:
        conn.close()


def _summary(conn: sqlite3.Connection, where: str) -> Summary:
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = [t for t in _TABLES if t not in names]
    if missing:
        raise InputError(f"not a broadcaster database: no {', '.join(missing)} table", where=where)
    problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise InputError(f"the database is damaged: {'; '.join(problems[:3])}", where=where)
    schema = int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0)
    want = latest("sqlite")
    if schema != want:
        raise InputError(f"the backup has schema version {schema}, this broadcaster needs {want}: restore it with "
                         "the broadcaster version that wrote it, then upgrade", where=where)
    alerts = int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
    deliveries = int(conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0])
    open_ = int(conn.execute("SELECT COUNT(*) FROM deliveries WHERE state IN (?, ?)", _OPEN).fetchone()[0])
    return Summary(schema, alerts, deliveries, open_)


async def restore_sqlite(backup: Path, database: str, *, now: float | None = None) -> Restored:
    """Put ``backup`` in place of the SQLite ``database``; open deliveries become ``unknown``.

    The backup is checked first; the copy and the marking happen in memory and
    reach ``database`` through the backup API in one step, so a failure leaves
    the database as it was. The caller refuses while the database is in use.
    """
    summary = await check_backup(backup)
    made = await in_thread(_restore, backup, database, time.time() if now is None else now)
    return Restored(summary, made)


def _restore(backup: Path, database: str, now: float) -> int:
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(_read_only(backup), uri=True)
    staging = sqlite3.connect(":memory:", isolation_level=None)
    try:
        source.backup(staging)
        made = _mark_unknown(staging, now)
        target = sqlite3.connect(database, timeout=30.0)
        try:
            staging.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{database}: the restore failed ({exc}); the database was left as it was") from None
    finally:
        staging.close()
        source.close()
    return made


def _read_only(path: str | Path) -> str:
    """A read-only SQLite URI for ``path`` (percent-encoded: a ``?`` or ``#`` in a folder name stays a name)."""
    return f"{Path(path).resolve().as_uri()}?mode=ro"


def _mark_unknown(conn: sqlite3.Connection, now: float) -> int:
    live = (Mode.LIVE, Mode.EXERCISE)
    where = ("state IN (?, ?) AND alert_id IN (SELECT id FROM alerts WHERE mode IN (?, ?))")
    params = (*_OPEN, *live)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"UPDATE attempts SET outcome = ?, finished_at = ?, detail = ? WHERE outcome IS NULL AND "
                     f"delivery_id IN (SELECT id FROM deliveries WHERE {where})",
                     (Outcome.UNKNOWN, now, RESTORED_DETAIL, *params))
        made = conn.execute(f"UPDATE deliveries SET state = ?, next_attempt_at = ?, lease_until = NULL, "
                            f"lease_owner = NULL WHERE {where}", (DeliveryState.UNKNOWN, now, *params)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return int(made)
