"""The embedded default store: one SQLite file in WAL mode.

Writes are batched: a claim leases many deliveries and writes their attempt
intents in one transaction; outcomes are recorded in batches. Alerts with
100,000 SMS recipients are inserted from a generator, so the recipient list is
never held in memory. Everything off this hot path is in
:class:`broadcaster.store.common.SqlStore`, shared with PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from broadcaster.errors import InputError
from broadcaster.store import migrate
from broadcaster.store.base import AlertRecord, Claimed, MessageRecord, NewDelivery, Outcome
from broadcaster.store.common import SqlStore, dumps, owner_is_dead, scope_sql
from broadcaster.store.sql import SqliteDatabase

__all__ = ["SqliteStore", "owner_is_dead"]

# Only a delivery's latest attempt moves it: an outcome that arrives after the delivery was recovered
# and claimed again (a node silent past its lease) is kept on its attempt row, never on the delivery.
LATEST_ATTEMPT = " AND NOT EXISTS (SELECT 1 FROM attempts WHERE delivery_id = ? AND id > ?)"


class SqliteStore(SqlStore):
    """SQLite implementation of :class:`broadcaster.store.base.Store`."""

    def __init__(self, path: str) -> None:
        self.path = self.where = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the database: {exc}", where=path) from None
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (kill -9); only power loss
        # can lose the last transactions, and those are reconciled like a crash.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.db = SqliteDatabase(self.conn)
        # One file owned by one installation: brought up to date as it is opened.
        migrate.upgrade(self.db)
        self._messages: dict[int, tuple[str, bytes | None]] = {}

    def close(self) -> None:
        self.conn.close()

    def _transaction(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

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
                    alert.sent_at, alert.expires_at, dumps(list(alert.areas)), dumps(list(alert.channels)),
                    dumps(alert.inputs), dumps(alert.forms), alert.created_by,
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
        self, channel_id: str, alert_ids: tuple[str, ...] | None, limit: int, now: float, lease_s: float, owner: str,
        modes: tuple[str, ...] | None = None,
    ) -> list[Claimed]:
        scope, params = scope_sql(alert_ids, modes)
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
                    "INSERT INTO attempts (delivery_id, attempt, started_at, node) VALUES (?,?,?,?)",
                    (delivery_id, attempt, now, owner),
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
            if len(self._messages) > 10_000:  # a long-running worker: keep the cache small
                self._messages.clear()
            text, payload = self.conn.execute(
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
                " next_attempt_at = ?, lease_until = NULL, lease_owner = NULL WHERE id = ?" + LATEST_ATTEMPT,
                [(o.state, o.provider_id, o.detail if o.state != "sent" else None, o.next_attempt_at,
                  o.delivery_id, o.delivery_id, o.attempt_id) for o in outcomes],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- the shared per-channel rate (see broadcaster.engine.ratelimit) ---------------

    def reserve_slots(self, channel_id: str, count: int, interval_s: float) -> tuple[float, float]:
        now, span = time.time(), count * interval_s
        row = self.db.execute(
            "INSERT INTO rate_slots AS r (channel_id, next_slot) VALUES (?, ?) ON CONFLICT (channel_id)"
            " DO UPDATE SET next_slot = MAX(r.next_slot, ?, r.paused_until) + ? RETURNING next_slot",
            (channel_id, now + span, now, span),
        ).fetchone()
        return float(row[0]) - span, now

    def pause_slots(self, channel_id: str, seconds: float) -> None:
        until = time.time() + seconds
        self.db.execute(
            "INSERT INTO rate_slots AS r (channel_id, next_slot, paused_until) VALUES (?, ?, ?) ON CONFLICT"
            " (channel_id) DO UPDATE SET paused_until = MAX(r.paused_until, ?), next_slot = MAX(r.next_slot, ?)",
            (channel_id, until, until, until, until),
        )
