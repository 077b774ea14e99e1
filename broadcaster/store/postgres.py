"""The PostgreSQL store: the same interface as SQLite's, for several nodes on one database.

Claims take ``FOR UPDATE SKIP LOCKED``, so nodes claiming the same channel at
once each get different deliveries and never wait on one another. An alert
commit sends ``NOTIFY broadcaster_due`` in its transaction, so idle workers on
every node wake the moment it is visible. The send slots of each channel live
in ``rate_slots``, timed by the database's clock, so nodes share one rate.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any, Final

import asyncpg
import orjson

from broadcaster.store import migrate
from broadcaster.store.base import AlertRecord, Claimed, MessageRecord, NewDelivery, Outcome
from broadcaster.store.common import SqlStore, dumps
from broadcaster.store.pgconn import Bridge, PgDatabase, numbered

NOTIFY_CHANNEL: Final = "broadcaster_due"
_COPY_BATCH: Final = 10_000
_CACHE_MAX: Final = 10_000  # message texts kept for claims

# One statement, one round trip: lease the due rows, write their attempts, and return what the
# sender needs. Message texts come back only for messages this process has not cached ($8).
_CLAIM = """
WITH due AS (
    SELECT id, state FROM deliveries
    WHERE channel_id = $1 AND state IN ('pending', 'unknown') AND next_attempt_at <= $2
      AND ($6::text[] IS NULL OR alert_id = ANY($6::text[]))
      AND ($7::text[] IS NULL OR alert_id IN (SELECT id FROM alerts WHERE mode = ANY($7::text[])))
    ORDER BY next_attempt_at, id LIMIT $3
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE deliveries d SET state = 'sending', attempts = d.attempts + 1, lease_until = $4, lease_owner = $5
    FROM due WHERE d.id = due.id
    RETURNING d.id, due.state AS previous, d.alert_id, d.language, d.recipient, d.reply_to, d.message_id, d.attempts
), attempt AS (
    INSERT INTO attempts (delivery_id, attempt, started_at, node)
    SELECT id, attempts, $2, $5 FROM leased
    RETURNING id, delivery_id
)
SELECT l.id, attempt.id, l.attempts, l.alert_id, l.language, l.recipient, l.reply_to, l.previous, l.message_id,
       a.sent_at, a.expires_at,
       CASE WHEN l.message_id = ANY($8::bigint[]) THEN NULL ELSE m.text END,
       CASE WHEN l.message_id = ANY($8::bigint[]) THEN NULL ELSE m.payload END
FROM leased l
JOIN attempt ON attempt.delivery_id = l.id
JOIN alerts a ON a.id = l.alert_id
JOIN messages m ON m.id = l.message_id
ORDER BY l.id
"""

_RECORD_ATTEMPTS = """
UPDATE attempts a SET finished_at = u.finished_at, outcome = u.outcome, http_status = u.http_status,
    error_code = u.error_code, provider_id = u.provider_id, latency_ms = u.latency_ms, detail = u.detail,
    started_at = u.started_at
FROM unnest($1::bigint[], $2::float8[], $3::text[], $4::int[], $5::text[], $6::text[], $7::float8[], $8::text[],
            $9::float8[]) AS u(id, finished_at, outcome, http_status, error_code, provider_id, latency_ms, detail,
                               started_at)
WHERE a.id = u.id
"""

_RECORD_DELIVERIES = """
UPDATE deliveries d SET state = u.state, provider_id = COALESCE(u.provider_id, d.provider_id),
    last_error = u.last_error, next_attempt_at = u.next_attempt_at, lease_until = NULL, lease_owner = NULL
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::bigint[])
    AS u(id, state, provider_id, last_error, next_attempt_at, attempt_id)
WHERE d.id = u.id
  -- only the delivery's latest attempt moves it (see store.sqlite.LATEST_ATTEMPT)
  AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = d.id AND a.id > u.attempt_id)
"""

_DB_NOW = "extract(epoch FROM statement_timestamp())::float8"


class PostgresStore(SqlStore):
    """PostgreSQL implementation of :class:`broadcaster.store.base.Store`."""

    def __init__(self, url: str, *, require_schema: bool = True) -> None:
        self.bridge = Bridge(url)
        self.path = self.where = self.bridge.where
        self.db = PgDatabase(self.bridge)
        if require_schema:
            try:
                migrate.require_current(self.db, self.where)
            except BaseException:
                self.bridge.close()
                raise
        self._messages: dict[int, tuple[str, bytes | None]] = {}
        self._known: dict[str, set[int]] = {}  # per channel: message ids whose text this process holds

    def close(self) -> None:
        self.bridge.close()

    # --- the hot path --------------------------------------------------------------

    def create_alert(
        self, alert: AlertRecord, messages: list[MessageRecord], deliveries: Iterable[NewDelivery]
    ) -> tuple[int, int]:
        # ``deliveries`` is read here, on the caller's thread, one COPY batch at a time: it may itself read
        # the store (an update's recipients are the original's), which it can do inside this transaction,
        # on this connection, but never from the bridge thread.
        with self.bridge.lock:
            self.db.execute("BEGIN")
            try:
                message_ids = self.bridge.call(self._start_alert, alert, messages)
                offered = 0
                pending = iter(deliveries)
                while batch := list(islice(pending, _COPY_BATCH)):
                    rows = [(d.channel_id, message_ids[d.message_key], d.language, d.recipient, d.reply_to,
                             offered + i) for i, d in enumerate(batch)]
                    offered += len(rows)
                    self.bridge.call(self._copy_deliveries, rows)
                created = self.bridge.call(self._finish_alert, alert, messages)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        return created, offered - created

    @staticmethod
    async def _start_alert(conn: asyncpg.Connection, alert: AlertRecord, messages: list[MessageRecord]
                           ) -> dict[str, int]:
        await conn.execute(
            numbered("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"),
            alert.id, alert.template, alert.template_hash, alert.mode, alert.msg_type, alert.references,
            alert.sent_at, alert.expires_at, dumps(list(alert.areas)), dumps(list(alert.channels)),
            dumps(alert.inputs), dumps(alert.forms), alert.created_by,
        )
        message_ids: dict[str, int] = {}
        for m in messages:
            message_ids[m.key] = await conn.fetchval(
                "INSERT INTO messages (alert_id, key, channel_id, language, text, payload)"
                " VALUES ($1,$2,$3,$4,$5,$6) RETURNING id",
                alert.id, m.key, m.channel_id, m.language, m.text, m.payload,
            )
        # COPY into a scratch table, then one INSERT … ON CONFLICT DO NOTHING keeps one SMS per phone.
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS new_deliveries (channel_id text, message_id bigint, language text,"
            " recipient text, reply_to text, seq bigint) ON COMMIT DELETE ROWS")
        return message_ids

    @staticmethod
    async def _copy_deliveries(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
        await conn.copy_records_to_table("new_deliveries", records=rows)

    @staticmethod
    async def _finish_alert(conn: asyncpg.Connection, alert: AlertRecord, messages: list[MessageRecord]) -> int:
        status = await conn.execute(
            "INSERT INTO deliveries (alert_id, channel_id, message_id, language, recipient, reply_to,"
            " next_attempt_at) SELECT $1, channel_id, message_id, language, recipient, reply_to, $2"
            " FROM new_deliveries ORDER BY seq ON CONFLICT DO NOTHING",
            alert.id, alert.sent_at,
        )
        channels = sorted({m.channel_id for m in messages})
        # Delivered by PostgreSQL when the transaction commits: idle workers wake on every node.
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL,
                           orjson.dumps({"alert": alert.id, "mode": alert.mode, "channels": channels}).decode())
        return int(status.rsplit(" ", 1)[-1])

    def claim(
        self, channel_id: str, alert_ids: tuple[str, ...] | None, limit: int, now: float, lease_s: float, owner: str,
        modes: tuple[str, ...] | None = None,
    ) -> list[Claimed]:
        return self.bridge.call(self._claim, channel_id, alert_ids, limit, now, lease_s, owner, modes)

    async def _claim(self, conn: asyncpg.Connection, channel_id: str, alert_ids: tuple[str, ...] | None, limit: int,
                     now: float, lease_s: float, owner: str, modes: tuple[str, ...] | None) -> list[Claimed]:
        if len(self._messages) > _CACHE_MAX:  # a worker runs for months: keep the cache small
            self._messages.clear()
        known = self._known.setdefault(channel_id, set())
        known &= self._messages.keys()
        rows = await conn.fetch(_CLAIM, channel_id, now, limit, now + lease_s, owner,
                                list(alert_ids) if alert_ids is not None else None,
                                list(modes) if modes is not None else None, list(known))
        claimed = []
        for (delivery_id, attempt_id, attempt, alert_id, language, recipient, reply_to, previous, message_id,
             sent_at, expires_at, text, payload) in rows:
            if message_id not in self._messages:
                self._messages[message_id] = (text, payload)
                known.add(message_id)
            text, payload = self._messages[message_id]
            claimed.append(Claimed(
                delivery_id=delivery_id, attempt_id=attempt_id, attempt=attempt, alert_id=alert_id,
                channel_id=channel_id, language=language, recipient=recipient, reply_to=reply_to, text=text,
                payload=payload, previous_state=previous, sent_at=sent_at, expires_at=expires_at,
            ))
        return claimed

    def record(self, outcomes: list[Outcome]) -> None:
        if outcomes:
            self.bridge.call(self._record, outcomes)

    async def _record(self, conn: asyncpg.Connection, outcomes: list[Outcome]) -> None:
        async with conn.transaction():
            await conn.execute(
                _RECORD_ATTEMPTS,
                [o.attempt_id for o in outcomes], [o.finished_at for o in outcomes], [o.outcome for o in outcomes],
                [o.http_status for o in outcomes], [o.error_code for o in outcomes],
                [o.provider_id for o in outcomes],
                [round((o.finished_at - o.started_at) * 1000, 3) for o in outcomes], [o.detail for o in outcomes],
                [o.started_at for o in outcomes],
            )
            await conn.execute(
                _RECORD_DELIVERIES,
                [o.delivery_id for o in outcomes], [o.state for o in outcomes], [o.provider_id for o in outcomes],
                [o.detail if o.state != "sent" else None for o in outcomes], [o.next_attempt_at for o in outcomes],
                [o.attempt_id for o in outcomes],
            )

    # --- the shared per-channel rate, on the database's clock ---------------------------

    def reserve_slots(self, channel_id: str, count: int, interval_s: float) -> tuple[float, float]:
        span = count * interval_s
        row = self.db.execute(
            f"INSERT INTO rate_slots AS r (channel_id, next_slot) VALUES (?, {_DB_NOW} + ?) ON CONFLICT (channel_id)"
            f" DO UPDATE SET next_slot = GREATEST(r.next_slot, {_DB_NOW}, r.paused_until) + ?"
            f" RETURNING next_slot, {_DB_NOW}",
            (channel_id, span, span),
        ).fetchone()
        return float(row[0]) - span, float(row[1])

    def pause_slots(self, channel_id: str, seconds: float) -> None:
        self.db.execute(
            f"INSERT INTO rate_slots AS r (channel_id, next_slot, paused_until) VALUES (?, {_DB_NOW} + ?,"
            f" {_DB_NOW} + ?) ON CONFLICT (channel_id) DO UPDATE SET paused_until ="
            f" GREATEST(r.paused_until, {_DB_NOW} + ?), next_slot = GREATEST(r.next_slot, {_DB_NOW} + ?)",
            (channel_id, seconds, seconds, seconds, seconds),
        )
