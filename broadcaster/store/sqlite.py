"""The embedded default store: one SQLite file in WAL mode.

Its hot path, written for SQLite: the outbox commit inserts the streamed
batches of deliveries one chunk at a time and yields to the event loop between
chunks (a 100,000-SMS commit never holds the loop for more than a chunk); a
claim leases a batch, writes its attempt intents and reads the texts in three
statements; outcomes are recorded in batches. Everything else is the portable
SQL of the other store modules.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Sequence
from typing import Any, Final

from broadcaster.states import DeliveryState, Mode
from broadcaster.store.alerts import SqlAlerts, copy_sql, insert_head
from broadcaster.store.leases import DUE, MOVABLE, OPEN_ATTEMPT, SqlLeases, scope_sql
from broadcaster.store.records import (
    AlertRecord,
    AttemptResult,
    AudienceCopy,
    Claimed,
    MessageRecord,
    NewDelivery,
    StepClaim,
)
from broadcaster.store.sql import marks
from broadcaster.store.sqlite_db import SqliteDatabase

_CACHE_MAX: Final = 10_000  # message texts kept for claims (a worker runs for months)


class SqliteAlerts(SqlAlerts):
    db: SqliteDatabase

    async def create(self, alert: AlertRecord, messages: Sequence[MessageRecord],
                     deliveries: AsyncIterable[Sequence[NewDelivery]],
                     copies: Sequence[AudienceCopy] = (), step: StepClaim | None = None,
                     withdraw: str | None = None) -> tuple[int, int]:
        conn = self.db.conn
        offered = created = 0
        async with self.db.transaction() as tx:
            message_ids = await insert_head(tx, alert, messages, step, withdraw)
            async for batch in deliveries:
                before = conn.total_changes
                await tx.executemany(
                    "INSERT INTO deliveries (alert_id, channel_id, message_id, language, recipient, reply_to,"
                    " next_attempt_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    [(alert.id, d.channel_id, message_ids[d.message_key], d.language, d.recipient, d.reply_to,
                      alert.sent_at) for d in batch])
                created += conn.total_changes - before
                offered += len(batch)
                await asyncio.sleep(0)  # one chunk at a time: the loop serves others in between
            for copy in copies:
                sql, params = copy_sql(copy, message_ids, alert.id, alert.sent_at)
                copied = (await tx.execute(sql, params)).rowcount
                created += copied
                offered += copied
        return created, offered - created


class SqliteLeases(SqlLeases):
    db: SqliteDatabase

    def __init__(self, db: SqliteDatabase) -> None:
        super().__init__(db)
        self._texts: dict[int, tuple[str, bytes | None]] = {}

    async def claim(self, channel_id: str, *, limit: int, now: float, lease_s: float, owner: str,
                    alert_ids: Sequence[str] | None = None, modes: Sequence[Mode] | None = None) -> list[Claimed]:
        scope, params = scope_sql(alert_ids, modes)
        async with self.db.transaction() as tx:
            due = (await tx.execute(
                f"SELECT d.id AS id, d.state AS state, d.alert_id AS alert_id, d.language AS language,"
                f" d.recipient AS recipient, d.reply_to AS reply_to, d.message_id AS message_id,"
                f" d.attempts + 1 AS attempt, a.sent_at AS sent_at, a.expires_at AS expires_at"
                f" FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
                f" WHERE d.channel_id = ? AND d.{DUE} AND d.next_attempt_at <= ? {scope}"
                f" ORDER BY d.next_attempt_at, d.id LIMIT ?",
                (channel_id, now, *params, limit),
            )).rows
            if not due:
                return []
            ids = [r["id"] for r in due]
            await tx.execute(
                f"UPDATE deliveries SET state = ?, attempts = attempts + 1, lease_until = ?, lease_owner = ?"
                f" WHERE id IN ({marks(ids)})", (DeliveryState.SENDING, now + lease_s, owner, *ids))
            attempts = {r["delivery_id"]: r["id"] for r in await tx.execute(
                f"INSERT INTO attempts (delivery_id, attempt, started_at, node, channel_id)"
                f" SELECT id, attempts, ?, ?, channel_id FROM deliveries WHERE id IN ({marks(ids)})"
                f" RETURNING id, delivery_id", (now, owner, *ids))}
            await self._cache_texts(tx, {r["message_id"] for r in due})
        claimed = []
        for r in due:
            text, payload = self._texts[r["message_id"]]
            claimed.append(Claimed(
                delivery_id=r["id"], attempt_id=attempts[r["id"]], attempt=r["attempt"], alert_id=r["alert_id"],
                channel_id=channel_id, language=r["language"], recipient=r["recipient"], reply_to=r["reply_to"],
                text=text, payload=payload, previous_state=DeliveryState(r["state"]), sent_at=r["sent_at"],
                expires_at=r["expires_at"],
            ))
        return claimed

    async def _cache_texts(self, tx: Any, message_ids: set[int]) -> None:
        missing = sorted(message_ids - self._texts.keys())
        if not missing:
            return
        if len(self._texts) > _CACHE_MAX:
            self._texts.clear()
            missing = sorted(message_ids)
        for r in await tx.execute(f"SELECT id, text, payload FROM messages WHERE id IN ({marks(missing)})", missing):
            self._texts[r["id"]] = (r["text"], r["payload"])

    async def record(self, results: Sequence[AttemptResult]) -> None:
        if not results:
            return
        async with self.db.transaction() as tx:
            await tx.executemany(
                "UPDATE attempts SET finished_at = ?, outcome = ?, http_status = ?, error_code = ?, provider_id = ?,"
                f" latency_ms = ?, detail = ?, started_at = ? WHERE id = ? AND {OPEN_ATTEMPT}",
                [(r.finished_at, r.outcome, r.http_status, r.error_code, r.provider_id, r.latency_ms, r.detail,
                  r.started_at, r.attempt_id) for r in results],
            )
            await tx.executemany(
                "UPDATE deliveries SET state = ?, provider_id = COALESCE(?, provider_id), last_error = ?,"
                f" next_attempt_at = ?, lease_until = NULL, lease_owner = NULL WHERE id = ? AND {MOVABLE}"
                " AND NOT EXISTS (SELECT 1 FROM attempts WHERE delivery_id = ? AND id > ?)",
                [(r.state, r.provider_id, r.detail if r.state != DeliveryState.SENT else None, r.next_attempt_at,
                  r.delivery_id, r.delivery_id, r.attempt_id) for r in results],
            )
