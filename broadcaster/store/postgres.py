"""The PostgreSQL store, for several nodes on one database; the same interfaces as SQLite's.

Its hot path: the outbox commit COPYs each batch into a scratch table and keeps
one SMS per phone with one ``INSERT … ON CONFLICT DO NOTHING``, then sends
``NOTIFY broadcaster_due`` in the same transaction, so idle workers on every
node wake the moment it is visible. A claim is one statement: it leases the due
rows with ``FOR UPDATE SKIP LOCKED`` (nodes claiming the same channel each get
different deliveries and never wait on one another), writes their attempts and
returns the texts this process has not cached yet.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any, Final

import asyncpg
import orjson

from broadcaster.clock import real_io
from broadcaster.states import DeliveryState, Mode, Outcome
from broadcaster.store.alerts import SqlAlerts, copy_sql, insert_head
from broadcaster.store.leases import DUE, MOVABLE, SqlLeases
from broadcaster.store.postgres_db import PgConnection, PgDatabase, mapped
from broadcaster.store.records import (
    AlertRecord,
    AttemptResult,
    AudienceCopy,
    Claimed,
    MessageRecord,
    NewDelivery,
    StepClaim,
)
from broadcaster.store.sql import Database, atomically

log = logging.getLogger("broadcaster.store")

NOTIFY_CHANNEL: Final = "broadcaster_due"
_CACHE_MAX: Final = 10_000  # message texts kept for claims

# One statement, one round trip: lease the due rows, write their attempts, and return what the
# sender needs. Message texts come back only for messages this process has not cached ($8).
_CLAIM: Final = f"""
WITH due AS (
    SELECT id, state FROM deliveries
    WHERE channel_id = $1 AND {DUE} AND next_attempt_at <= $2
      AND ($6::text[] IS NULL OR alert_id = ANY($6::text[]))
      AND ($7::text[] IS NULL OR alert_id IN (SELECT id FROM alerts WHERE mode = ANY($7::text[])))
    ORDER BY next_attempt_at, id LIMIT $3
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE deliveries d SET state = '{DeliveryState.SENDING}', attempts = d.attempts + 1, lease_until = $4,
        lease_owner = $5
    FROM due WHERE d.id = due.id
    RETURNING d.id, due.state AS previous, d.alert_id, d.language, d.recipient, d.reply_to, d.message_id, d.attempts
), attempt AS (
    INSERT INTO attempts (delivery_id, attempt, started_at, node, channel_id)
    SELECT id, attempts, $2, $5, $1 FROM leased
    RETURNING id, delivery_id
)
SELECT l.id AS delivery_id, attempt.id AS attempt_id, l.attempts AS attempt, l.alert_id AS alert_id,
       l.language AS language, l.recipient AS recipient, l.reply_to AS reply_to, l.previous AS previous,
       l.message_id AS message_id, a.sent_at AS sent_at, a.expires_at AS expires_at,
       CASE WHEN l.message_id = ANY($8::bigint[]) THEN NULL ELSE m.text END AS text,
       CASE WHEN l.message_id = ANY($8::bigint[]) THEN NULL ELSE m.payload END AS payload
FROM leased l
JOIN attempt ON attempt.delivery_id = l.id
JOIN alerts a ON a.id = l.alert_id
JOIN messages m ON m.id = l.message_id
ORDER BY l.id
"""

_RECORD_ATTEMPTS: Final = f"""
UPDATE attempts a SET finished_at = u.finished_at, outcome = u.outcome, http_status = u.http_status,
    error_code = u.error_code, provider_id = u.provider_id, latency_ms = u.latency_ms, detail = u.detail,
    started_at = u.started_at
FROM unnest($1::bigint[], $2::float8[], $3::text[], $4::int[], $5::text[], $6::text[], $7::float8[], $8::text[],
            $9::float8[]) AS u(id, finished_at, outcome, http_status, error_code, provider_id, latency_ms, detail,
                               started_at)
WHERE a.id = u.id AND (a.outcome IS NULL OR a.outcome = '{Outcome.UNKNOWN}')  -- leases.OPEN_ATTEMPT
"""

_RECORD_DELIVERIES: Final = f"""
UPDATE deliveries d SET state = u.state, provider_id = COALESCE(u.provider_id, d.provider_id),
    last_error = u.last_error, next_attempt_at = u.next_attempt_at, lease_until = NULL, lease_owner = NULL
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::bigint[])
    AS u(id, state, provider_id, last_error, next_attempt_at, attempt_id)
WHERE d.id = u.id AND d.{MOVABLE}
  AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = d.id AND a.id > u.attempt_id)
"""


class PgAlerts(SqlAlerts):
    db: PgDatabase

    async def create(self, alert: AlertRecord, messages: Sequence[MessageRecord],
                     deliveries: AsyncIterable[Sequence[NewDelivery]],
                     copies: Sequence[AudienceCopy] = (), step: StepClaim | None = None,
                     withdraw: str | None = None) -> tuple[int, int]:
        offered = 0
        async with self.db.transaction() as tx:
            assert isinstance(tx, PgConnection)
            message_ids = await insert_head(tx, alert, messages, step, withdraw)
            # COPY into a scratch table, then one INSERT … ON CONFLICT DO NOTHING keeps one SMS per phone.
            await tx.execute(
                "CREATE TEMP TABLE IF NOT EXISTS new_deliveries (channel_id text, message_id bigint, language text,"
                " recipient text, reply_to text, seq bigint) ON COMMIT DELETE ROWS")
            async for batch in deliveries:
                rows = [(d.channel_id, message_ids[d.message_key], d.language, d.recipient, d.reply_to,
                         offered + i) for i, d in enumerate(batch)]
                offered += len(rows)
                with real_io(), mapped(self.db.where):
                    await tx.raw.copy_records_to_table("new_deliveries", records=rows)
            created = (await tx.execute(
                "INSERT INTO deliveries (alert_id, channel_id, message_id, language, recipient, reply_to,"
                " next_attempt_at) SELECT ?, channel_id, message_id, language, recipient, reply_to, ?"
                " FROM new_deliveries ORDER BY seq ON CONFLICT DO NOTHING", (alert.id, alert.sent_at))).rowcount
            for copy in copies:
                sql, params = copy_sql(copy, message_ids, alert.id, alert.sent_at)
                copied = (await tx.execute(sql, params)).rowcount
                created += copied
                offered += copied
            channels = sorted({m.channel_id for m in messages})
            # Delivered by PostgreSQL when the transaction commits: idle workers wake on every node.
            await tx.execute("SELECT pg_notify(?, ?)", (NOTIFY_CHANNEL, orjson.dumps(
                {"alert": alert.id, "mode": str(alert.mode), "channels": channels}).decode()))
        return created, offered - created


class PgLeases(SqlLeases):
    db: PgDatabase

    def __init__(self, db: PgDatabase) -> None:
        super().__init__(db)
        self._texts: dict[int, tuple[str, bytes | None]] = {}
        self._known: dict[str, set[int]] = {}  # per channel: message ids whose text this process holds

    async def claim(self, channel_id: str, *, limit: int, now: float, lease_s: float, owner: str,
                    alert_ids: Sequence[str] | None = None, modes: Sequence[Mode] | None = None) -> list[Claimed]:
        if len(self._texts) > _CACHE_MAX:
            self._texts.clear()
        known = self._known.setdefault(channel_id, set())
        known &= self._texts.keys()
        rows = await self.db.execute(_CLAIM, (
            channel_id, now, limit, now + lease_s, owner, list(alert_ids) if alert_ids is not None else None,
            [str(m) for m in modes] if modes is not None else None, list(known)))
        claimed = []
        for r in rows:
            message_id = r["message_id"]
            if message_id not in self._texts:
                self._texts[message_id] = (r["text"], r["payload"])
                known.add(message_id)
            text, payload = self._texts[message_id]
            claimed.append(Claimed(
                delivery_id=r["delivery_id"], attempt_id=r["attempt_id"], attempt=r["attempt"],
                alert_id=r["alert_id"], channel_id=channel_id, language=r["language"], recipient=r["recipient"],
                reply_to=r["reply_to"], text=text, payload=payload, previous_state=DeliveryState(r["previous"]),
                sent_at=r["sent_at"], expires_at=r["expires_at"],
            ))
        return claimed

    async def record(self, results: Sequence[AttemptResult]) -> None:
        if not results:
            return
        await atomically(self.db, lambda tx: self._record(tx, results))

    @staticmethod
    async def _record(tx: Database, results: Sequence[AttemptResult]) -> None:
        """In one transaction: the attempts first, then the deliveries they move (by id order, against deadlocks)."""
        results = sorted(results, key=lambda r: r.delivery_id)
        await tx.execute(_RECORD_ATTEMPTS, (
            [r.attempt_id for r in results], [r.finished_at for r in results], [str(r.outcome) for r in results],
            [r.http_status for r in results], [r.error_code for r in results],
            [r.provider_id for r in results], [r.latency_ms for r in results], [r.detail for r in results],
            [r.started_at for r in results]))
        await tx.execute(_RECORD_DELIVERIES, (
            [r.delivery_id for r in results], [str(r.state) for r in results],
            [r.provider_id for r in results],
            [r.detail if r.state != DeliveryState.SENT else None for r in results],
            [r.next_attempt_at for r in results], [r.attempt_id for r in results]))


class PgWakeups:
    """``LISTEN broadcaster_due`` on a pooled connection of its own: idle workers wake on every commit."""

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def listening(self, wake: Callable[[list[str] | None], None]) -> AsyncIterator[None]:
        """While the block runs, ``wake(channels)`` is called (on this loop) for every committed alert."""

        def notified(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            try:
                channels: list[str] | None = orjson.loads(payload).get("channels")
            except (orjson.JSONDecodeError, AttributeError):
                channels = None
            wake(channels)

        async with self.db.dedicated() as conn:
            with real_io(), mapped(self.db.where):
                await conn.add_listener(NOTIFY_CHANNEL, notified)
            try:
                yield
            finally:
                if not conn.is_closed():
                    with contextlib.suppress(asyncpg.PostgresError, OSError), real_io():
                        await conn.remove_listener(NOTIFY_CHANNEL, notified)
