"""What the audit anchors read, and the seal of each finished alert (``seals``), on either backend.

An alert is anchored twice (:mod:`broadcaster.anchors`): once committed, its row and
messages as stored; once every delivery is final, each delivery's final state and
attempts. This component reads those rows exactly as stored, page by page, and
keeps the seals: one row per sealed alert with one digest per delivery, written in
the same transaction as the audit row that carries their sha256.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from broadcaster.states import OPEN_STATES
from broadcaster.store.alerts import ALERT_COLUMNS
from broadcaster.store.sql import Database, marks

PAGE: Final = 5_000
ANCHORING_MIGRATION: Final = 6  # the migration that began anchoring alerts to the audit log
MESSAGE_COLUMNS: Final = "key, channel_id, language, text, payload"
SEALED_DELIVERY: Final = ("id, channel_id, message_id, language, recipient, reply_to, state, attempts, provider_id,"
                          " last_error")
SEALED_ATTEMPT: Final = ("id, delivery_id, attempt, started_at, finished_at, outcome, http_status, error_code,"
                         " provider_id, latency_ms, detail, node")
SEAL_COLUMNS: Final = "alert_id, audit_seq, sealed_at, deliveries, sha256, digests"
_OPEN: Final = tuple(sorted(OPEN_STATES))


@dataclass(frozen=True, slots=True)
class SealRow:
    alert_id: str
    audit_seq: int
    sealed_at: float
    deliveries: int
    sha256: str
    digests: str


def _seal(row: Any) -> SealRow:
    return SealRow(alert_id=row["alert_id"], audit_seq=int(row["audit_seq"]), sealed_at=row["sealed_at"],
                   deliveries=int(row["deliveries"]), sha256=row["sha256"], digests=row["digests"])


class SqlSeals:
    """Reads alerts, messages, deliveries and attempts as stored; writes and reads seals."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def alert_rows(self, alert_id: str) -> tuple[Any, list[Any]] | None:
        """The alert's row and its messages (by key), as stored; None when there is no such alert."""
        alert = (await self.db.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))).one()
        if alert is None:
            return None
        messages = await self.db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE alert_id = ? ORDER BY key", (alert_id,))
        return alert, messages.rows

    async def alert_ids(self) -> AsyncIterator[tuple[str, float]]:
        """Every alert's ``(id, sent_at)``, in id order, page by page."""
        after = ""
        while True:
            rows = (await self.db.execute("SELECT id, sent_at FROM alerts WHERE id > ? ORDER BY id LIMIT ?",
                                          (after, PAGE))).rows
            for row in rows:
                yield row["id"], float(row["sent_at"])
            if len(rows) < PAGE:
                return
            after = rows[-1]["id"]

    async def anchored_since(self) -> float:
        """When anchoring began here (migration 0006 applied): alerts sent before it have no commit anchor."""
        value = (await self.db.execute("SELECT applied_at FROM schema_migrations WHERE version = ?",
                                       (ANCHORING_MIGRATION,))).scalar()
        return float(value) if value is not None else 0.0

    async def is_final(self, alert_id: str) -> bool:
        """True when none of the alert's deliveries is pending, sending or unknown."""
        row = (await self.db.execute(
            f"SELECT 1 AS open FROM deliveries WHERE alert_id = ? AND state IN ({marks(_OPEN)}) LIMIT 1",
            (alert_id, *_OPEN))).one()
        return row is None

    async def unsealed(self, limit: int = 100) -> list[str]:
        """Alerts with no seal yet whose deliveries are all final, oldest first (the sealer's sweep)."""
        rows = await self.db.execute(
            "SELECT a.id AS id FROM alerts a WHERE NOT EXISTS (SELECT 1 FROM seals s WHERE s.alert_id = a.id)"
            f" AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = a.id AND d.state IN ({marks(_OPEN)}))"
            " ORDER BY a.sent_at, a.id LIMIT ?", (*_OPEN, limit))
        return [r["id"] for r in rows]

    async def deliveries(self, alert_id: str) -> AsyncIterator[list[tuple[Any, list[Any]]]]:
        """The alert's deliveries in id order, each with its attempts in id order, a page at a time.

        Pages are ranges of the primary key (rows of other alerts in a range are skipped), so each
        page is one index range on either backend, however large the alert.
        """
        bounds = (await self.db.execute("SELECT MIN(id) AS lo, MAX(id) AS hi FROM deliveries WHERE alert_id = ?",
                                        (alert_id,))).one()
        if bounds is None or bounds["lo"] is None:
            return
        low, high = int(bounds["lo"]), int(bounds["hi"])
        while low <= high:
            top = min(high, low + PAGE - 1)
            rows = [r for r in await self.db.execute(
                f"SELECT alert_id, {SEALED_DELIVERY} FROM deliveries WHERE id >= ? AND id <= ? ORDER BY id",
                (low, top)) if r["alert_id"] == alert_id]
            low = top + 1
            if not rows:
                continue
            attempts: dict[int, list[Any]] = {}
            for a in await self.db.execute(
                f"SELECT {SEALED_ATTEMPT} FROM attempts WHERE delivery_id >= ? AND delivery_id <= ?"
                " ORDER BY delivery_id, id", (rows[0]["id"], rows[-1]["id"])):
                attempts.setdefault(a["delivery_id"], []).append(a)
            yield [(row, attempts.get(row["id"], [])) for row in rows]

    async def get(self, alert_id: str) -> SealRow | None:
        row = (await self.db.execute(f"SELECT {SEAL_COLUMNS} FROM seals WHERE alert_id = ?", (alert_id,))).one()
        return _seal(row) if row is not None else None

    async def put(self, tx: Database, seal: SealRow) -> None:
        """Inside the audit append's transaction: the seal its row carries the sha256 of."""
        await tx.execute(f"INSERT INTO seals ({SEAL_COLUMNS}) VALUES (?,?,?,?,?,?)",
                         (seal.alert_id, seal.audit_seq, seal.sealed_at, seal.deliveries, seal.sha256, seal.digests))

    async def sealed(self, tx: Database, alert_id: str) -> bool:
        """Whether ``alert_id`` has a seal (read inside ``tx``, the sealing transaction, to seal it once)."""
        return (await tx.execute("SELECT 1 AS sealed FROM seals WHERE alert_id = ?", (alert_id,))).one() is not None

    async def all(self) -> AsyncIterator[tuple[str, int]]:
        """Every seal's ``(alert_id, audit_seq)``, without its digests."""
        after = ""
        while True:
            rows = (await self.db.execute(
                "SELECT alert_id, audit_seq FROM seals WHERE alert_id > ? ORDER BY alert_id LIMIT ?",
                (after, PAGE))).rows
            for row in rows:
                yield row["alert_id"], int(row["audit_seq"])
            if len(rows) < PAGE:
                return
            after = rows[-1]["alert_id"]
