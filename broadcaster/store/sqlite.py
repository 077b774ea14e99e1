"""The embedded default store: one SQLite file in WAL mode.

Writes are batched: a claim leases many deliveries and writes their attempt
intents in one transaction; outcomes are recorded in batches. Alerts with
100,000 SMS recipients are inserted from a generator, so the recipient list is
never held in memory.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from broadcaster.errors import InputError
from broadcaster.runbooks.records import RunRecord, RunStepRow
from broadcaster.store.base import (
    AlertRecord,
    AttemptRow,
    Claimed,
    DeliveryRow,
    MessageRecord,
    NewDelivery,
    Outcome,
)

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('dry-run', 'exercise', 'live')),
    msg_type TEXT NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    refs TEXT REFERENCES alerts(id),
    sent_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    areas TEXT NOT NULL,
    channels TEXT NOT NULL,
    inputs TEXT NOT NULL,
    forms TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts(id),
    key TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    language TEXT NOT NULL,
    text TEXT NOT NULL,
    payload BLOB,
    UNIQUE (alert_id, key)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts(id),
    channel_id TEXT NOT NULL,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    language TEXT NOT NULL,
    recipient TEXT,
    reply_to TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    lease_until REAL,
    lease_owner TEXT,
    provider_id TEXT,
    last_error TEXT
);
-- One SMS per phone per alert, whatever list or channel it came from.
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_one_per_phone
    ON deliveries (alert_id, recipient) WHERE recipient IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (channel_id, state, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_alert ON deliveries (alert_id, channel_id);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    attempt INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,
    http_status INTEGER,
    error_code TEXT,
    provider_id TEXT,
    latency_ms REAL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
-- Runbook runs, rehearsals and scheduled fires, and what each of their steps did.
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('rehearsal', 'runbook', 'schedule')),
    runbook TEXT NOT NULL,
    source TEXT,
    spec TEXT NOT NULL,
    config TEXT,
    mode TEXT NOT NULL CHECK (mode IN ('dry-run', 'exercise', 'live')),
    inputs TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'finished', 'stopped')),
    started_at REAL NOT NULL,
    finished_at REAL,
    detail TEXT
);
-- One row per step occurrence; a job claims its row (scheduled -> firing) before it fires,
-- so a job that runs twice fires once.
CREATE TABLE IF NOT EXISTS run_steps (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id),
    step_id TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('awaiting', 'scheduled', 'firing', 'fired', 'failed', 'missed', 'skipped')),
    due_at REAL,
    confirmed_at REAL,
    fired_at REAL,
    alert_id TEXT,
    owner TEXT,
    detail TEXT,
    UNIQUE (run_id, step_id, occurrence)
);
-- The HTTP service (broadcaster.service): API users, the audit chain, two-person
-- fires awaiting a second officer, and Twilio delivery receipts.
CREATE INDEX IF NOT EXISTS deliveries_provider ON deliveries (provider_id) WHERE provider_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'officer', 'approver')),
    token_id TEXT NOT NULL UNIQUE,
    token_salt BLOB NOT NULL,
    token_hash BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TABLE IF NOT EXISTS pending_fires (
    alert_id TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    mode TEXT NOT NULL,
    request TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at REAL NOT NULL,
    confirm_by REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'awaiting_confirmation',
    confirmed_by TEXT,
    confirmed_at REAL
);
CREATE TABLE IF NOT EXISTS receipts (
    id INTEGER PRIMARY KEY,
    message_sid TEXT NOT NULL,
    status TEXT NOT NULL,
    final TEXT,
    error_code TEXT,
    received_at REAL NOT NULL,
    UNIQUE (message_sid, status)
);
"""


class SqliteStore:
    """SQLite implementation of :class:`broadcaster.store.base.Store`."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the database: {exc}", where=path) from None
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (kill -9); only power loss
        # can lose the last transactions, and those are reconciled like a crash.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise InputError(f"database schema {version} is newer than this program ({SCHEMA_VERSION})", where=path)
        self.db.executescript(_SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._messages: dict[int, tuple[str, bytes | None]] = {}

    def close(self) -> None:
        self.db.close()

    def _transaction(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    # --- writing -----------------------------------------------------------------

    def create_alert(
        self, alert: AlertRecord, messages: list[MessageRecord], deliveries: Iterable[NewDelivery]
    ) -> tuple[int, int]:
        db = self._transaction()
        try:
            db.execute(
                "INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    alert.id, alert.template, alert.template_hash, alert.mode, alert.msg_type, alert.references,
                    alert.sent_at, alert.expires_at, _dumps(list(alert.areas)), _dumps(list(alert.channels)),
                    _dumps(alert.inputs), _dumps(alert.forms), alert.created_by,
                ),
            )
            message_ids: dict[str, int] = {}
            for m in messages:
                cur = db.execute(
                    "INSERT INTO messages (alert_id, key, channel_id, language, text, payload) VALUES (?,?,?,?,?,?)",
                    (alert.id, m.key, m.channel_id, m.language, m.text, m.payload),
                )
                assert cur.lastrowid is not None
                message_ids[m.key] = cur.lastrowid
            before = db.total_changes
            offered = 0

            def rows() -> Iterator[tuple[Any, ...]]:
                nonlocal offered
                for d in deliveries:
                    offered += 1
                    yield (alert.id, d.channel_id, message_ids[d.message_key], d.language, d.recipient,
                           d.reply_to, alert.sent_at)

            db.executemany(
                "INSERT OR IGNORE INTO deliveries (alert_id, channel_id, message_id, language, recipient, reply_to,"
                " next_attempt_at) VALUES (?,?,?,?,?,?,?)",
                rows(),
            )
            created = db.total_changes - before
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return created, offered - created

    def claim(
        self, channel_id: str, alert_ids: tuple[str, ...] | None, limit: int, now: float, lease_s: float, owner: str
    ) -> list[Claimed]:
        scope, params = _scope(alert_ids)
        db = self._transaction()
        try:
            rows = db.execute(
                f"""SELECT id, state, alert_id, language, recipient, reply_to, message_id, attempts + 1
                    FROM deliveries
                    WHERE channel_id = ? AND state IN ('pending', 'unknown') AND next_attempt_at <= ? {scope}
                    ORDER BY next_attempt_at, id LIMIT ?""",
                (channel_id, now, *params, limit),
            ).fetchall()
            db.executemany(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, lease_until = ?, lease_owner = ?"
                " WHERE id = ?",
                [(now + lease_s, owner, r[0]) for r in rows],
            )
            alerts: dict[str, tuple[float, float]] = {}
            claimed: list[Claimed] = []
            for delivery_id, state, alert_id, language, recipient, reply_to, message_id, attempt in rows:
                cur = db.execute(
                    "INSERT INTO attempts (delivery_id, attempt, started_at) VALUES (?,?,?)",
                    (delivery_id, attempt, now),
                )
                assert cur.lastrowid is not None
                text, payload = self._message(message_id)
                if alert_id not in alerts:
                    alerts[alert_id] = db.execute(
                        "SELECT sent_at, expires_at FROM alerts WHERE id = ?", (alert_id,)
                    ).fetchone()
                sent_at, expires_at = alerts[alert_id]
                claimed.append(Claimed(
                    delivery_id=delivery_id, attempt_id=cur.lastrowid, attempt=attempt, alert_id=alert_id,
                    channel_id=channel_id, language=language, recipient=recipient, reply_to=reply_to, text=text,
                    payload=payload, previous_state=state, sent_at=sent_at, expires_at=expires_at,
                ))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return claimed

    def _message(self, message_id: int) -> tuple[str, bytes | None]:
        cached = self._messages.get(message_id)
        if cached is None:
            text, payload = self.db.execute(
                "SELECT text, payload FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            cached = self._messages[message_id] = (text, payload)
        return cached

    def record(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        db = self._transaction()
        try:
            db.executemany(
                "UPDATE attempts SET finished_at = ?, outcome = ?, http_status = ?, error_code = ?, provider_id = ?,"
                " latency_ms = ?, detail = ?, started_at = ? WHERE id = ?",
                [
                    (o.finished_at, o.outcome, o.http_status, o.error_code, o.provider_id,
                     round((o.finished_at - o.started_at) * 1000, 3), o.detail, o.started_at, o.attempt_id)
                    for o in outcomes
                ],
            )
            db.executemany(
                "UPDATE deliveries SET state = ?, provider_id = COALESCE(?, provider_id), last_error = ?,"
                " next_attempt_at = ?, lease_until = NULL, lease_owner = NULL WHERE id = ?",
                [(o.state, o.provider_id, o.detail if o.state != "sent" else None, o.next_attempt_at,
                  o.delivery_id) for o in outcomes],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def expire(self, now: float, alert_ids: tuple[str, ...] | None = None) -> int:
        """Deliveries of alerts past ``expires`` that never went out: marked expired, never attempted."""
        scope, params = _scope(alert_ids)
        cur = self.db.execute(
            f"""UPDATE deliveries SET state = 'expired', last_error = 'alert expired before delivery',
                next_attempt_at = NULL
            WHERE state IN ('pending', 'unknown') {scope}
              AND alert_id IN (SELECT id FROM alerts WHERE expires_at <= ?)""",
            (*params, now),
        )
        return cur.rowcount

    def recover_orphans(self, now: float, is_dead: Callable[[str], bool]) -> int:
        """Deliveries left ``sending`` by a process that died: they become ``unknown``.

        A lease is orphaned when it has expired, or when ``is_dead(owner)`` says
        its owner process is gone. Their in-flight attempts are closed as unknown.
        """
        rows = self.db.execute(
            "SELECT id, lease_owner, lease_until FROM deliveries WHERE state = 'sending'"
        ).fetchall()
        orphans = [r[0] for r in rows if (r[2] or 0) <= now or is_dead(r[1] or "")]
        if not orphans:
            return 0
        db = self._transaction()
        try:
            for chunk in _chunks(orphans, 500):
                db.execute(
                    f"UPDATE attempts SET outcome = 'unknown', finished_at = ?, detail = 'process ended mid-attempt'"
                    f" WHERE outcome IS NULL AND delivery_id IN ({_marks(chunk)})",
                    (now, *chunk),
                )
                db.execute(
                    f"UPDATE deliveries SET state = 'unknown', next_attempt_at = ?, lease_until = NULL,"
                    f" lease_owner = NULL WHERE id IN ({_marks(chunk)})",
                    (now, *chunk),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(orphans)

    def withdraw(self, alert_id: str, reason: str) -> int:
        """Stop deliveries of ``alert_id`` that have not gone out (a cancel supersedes them)."""
        cur = self.db.execute(
            "UPDATE deliveries SET state = 'withdrawn', last_error = ?, next_attempt_at = NULL"
            " WHERE alert_id = ? AND state IN ('pending', 'unknown')",
            (reason, alert_id),
        )
        return cur.rowcount

    # --- reading -----------------------------------------------------------------

    def recipients(self, alert_id: str, channel_id: str, states: tuple[str, ...]) -> Iterator[tuple[str, str]]:
        """``(phone, language)`` of an alert's SMS deliveries in ``states``, streamed."""
        cursor = self.db.execute(
            f"SELECT recipient, language FROM deliveries WHERE alert_id = ? AND channel_id = ?"
            f" AND recipient IS NOT NULL AND state IN ({_marks(states)}) ORDER BY id",
            (alert_id, channel_id, *states),
        )
        yield from cursor

    def next_due(self, channel_id: str, alert_ids: tuple[str, ...] | None) -> float | None:
        scope, params = _scope(alert_ids)
        row = self.db.execute(
            f"SELECT MIN(next_attempt_at) FROM deliveries WHERE channel_id = ? AND state IN ('pending', 'unknown')"
            f" AND next_attempt_at IS NOT NULL {scope}",
            (channel_id, *params),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def alert(self, alert_id: str) -> AlertRecord:
        row = self.db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        if row is None:
            raise InputError(f"no alert with id {alert_id!r}", where=self.path)
        return _alert(row)

    def alerts(self, limit: int = 50) -> list[AlertRecord]:
        rows = self.db.execute("SELECT * FROM alerts ORDER BY sent_at DESC LIMIT ?", (limit,)).fetchall()
        return [_alert(r) for r in rows]

    def deliveries(self, alert_id: str) -> list[DeliveryRow]:
        rows = self.db.execute(
            "SELECT id, alert_id, channel_id, recipient, language, state, attempts, provider_id, last_error"
            " FROM deliveries WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        ).fetchall()
        return [DeliveryRow(*r) for r in rows]

    def attempts(self, alert_id: str) -> Iterator[AttemptRow]:
        cursor = self.db.execute(
            """SELECT d.alert_id, d.channel_id, d.recipient, d.language, a.attempt, a.outcome, a.http_status,
                      a.error_code, a.provider_id, a.started_at, a.finished_at, a.latency_ms, a.detail
               FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
               WHERE d.alert_id = ? ORDER BY a.id""",
            (alert_id,),
        )
        for row in cursor:
            yield AttemptRow(*row)

    def state_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for channel_id, state, n in self.db.execute(
            "SELECT channel_id, state, COUNT(*) FROM deliveries WHERE alert_id = ? GROUP BY channel_id, state",
            (alert_id,),
        ):
            counts.setdefault(channel_id, {})[state] = n
        return counts

    def unfinished_alerts(self) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT alert_id FROM deliveries WHERE state IN ('pending', 'sending', 'unknown')"
            )
        ]

    def provider_ids(self, alert_id: str) -> dict[tuple[str, str | None, str], str]:
        """``(channel, recipient, language) -> provider id`` of sent deliveries (for threading)."""
        return {
            (c, r, lang): p
            for c, r, lang, p in self.db.execute(
                "SELECT channel_id, recipient, language, provider_id FROM deliveries"
                " WHERE alert_id = ? AND state = 'sent' AND provider_id IS NOT NULL",
                (alert_id,),
            )
        }


    # --- runbook runs (see broadcaster.runbooks) -------------------------------------

    def create_run(self, run: RunRecord) -> None:
        self.db.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (run.id, run.kind, run.runbook, run.source, _dumps(run.spec), run.config, run.mode, _dumps(run.inputs),
             run.state, run.started_at, run.finished_at, run.detail),
        )

    def find_run(self, run_id: str) -> RunRecord | None:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def run(self, run_id: str) -> RunRecord:
        run = self.find_run(run_id)
        if run is None:
            raise InputError(f"no runbook run or schedule with id {run_id!r}", where=self.path)
        return run

    def runs(self, states: tuple[str, ...] | None = None, limit: int = 100) -> list[RunRecord]:
        where = f"WHERE state IN ({_marks(states)})" if states else ""
        rows = self.db.execute(f"SELECT * FROM runs {where} ORDER BY started_at DESC LIMIT ?",
                               (*(states or ()), limit)).fetchall()
        return [_run(r) for r in rows]

    def end_run(self, run_id: str, state: str, now: float, detail: str | None = None) -> bool:
        """A running run becomes finished or stopped; False if it was not running."""
        cur = self.db.execute(
            "UPDATE runs SET state = ?, finished_at = ?, detail = COALESCE(?, detail)"
            " WHERE id = ? AND state = 'running'",
            (state, now, detail, run_id),
        )
        return cur.rowcount == 1

    def run_steps(self, run_id: str) -> list[RunStepRow]:
        rows = self.db.execute(
            "SELECT run_id, step_id, occurrence, state, due_at, confirmed_at, fired_at, alert_id, owner, detail"
            " FROM run_steps WHERE run_id = ? ORDER BY COALESCE(due_at, confirmed_at), id",
            (run_id,),
        ).fetchall()
        return [RunStepRow(*r) for r in rows]

    def put_run_step(self, run_id: str, step_id: str, occurrence: int, state: str, due_at: float | None,
                     *, confirmed_at: float | None = None, detail: str | None = None) -> bool:
        """Add a step occurrence's row; False if it already exists (the UNIQUE key keeps one)."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO run_steps (run_id, step_id, occurrence, state, due_at, confirmed_at, detail)"
            " VALUES (?,?,?,?,?,?,?)",
            (run_id, step_id, occurrence, state, due_at, confirmed_at, detail),
        )
        return cur.rowcount == 1

    def move_run_step(self, run_id: str, step_id: str, occurrence: int, *, from_states: tuple[str, ...],
                      to_state: str, **fields: float | str | None) -> bool:
        """Compare-and-set: move the row to ``to_state`` only if it is in ``from_states``.

        One UPDATE statement, so two jobs racing for the same row cannot both win:
        this is how a job claims its step (``scheduled -> firing``) before firing.
        ``fields`` may set due_at, confirmed_at, fired_at, alert_id, owner, detail.
        """
        allowed = {"due_at", "confirmed_at", "fired_at", "alert_id", "owner", "detail"}
        if set(fields) - allowed:
            raise ValueError(f"unknown run_steps field(s): {set(fields) - allowed}")
        sets = "".join(f", {name} = ?" for name in fields)
        cur = self.db.execute(
            f"UPDATE run_steps SET state = ?{sets} WHERE run_id = ? AND step_id = ? AND occurrence = ?"
            f" AND state IN ({_marks(from_states)})",
            (to_state, *fields.values(), run_id, step_id, occurrence, *from_states),
        )
        return cur.rowcount == 1


def _run(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0], kind=row[1], runbook=row[2], source=row[3], spec=orjson.loads(row[4]), config=row[5], mode=row[6],
        inputs=orjson.loads(row[7]), state=row[8], started_at=row[9], finished_at=row[10], detail=row[11],
    )


def _scope(alert_ids: tuple[str, ...] | None) -> tuple[str, tuple[str, ...]]:
    if alert_ids is None:
        return "", ()
    return f"AND alert_id IN ({_marks(alert_ids)})", alert_ids


def _marks(items: Iterable[object]) -> str:
    return ",".join("?" for _ in items)


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _alert(row: tuple[Any, ...]) -> AlertRecord:
    return AlertRecord(
        id=row[0], template=row[1], template_hash=row[2], mode=row[3], msg_type=row[4], references=row[5],
        sent_at=row[6], expires_at=row[7], areas=tuple(orjson.loads(row[8])), channels=tuple(orjson.loads(row[9])),
        inputs=orjson.loads(row[10]), forms=orjson.loads(row[11]), created_by=row[12],
    )


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
