"""Twilio delivery receipts (``receipts``): stored once per ``(MessageSid, MessageStatus)``.

``delivered``/``read`` make a sent SMS ``delivered``; ``undelivered``/``failed``
make it ``undelivered``. The engine's own delivery state stays ``sent``
(follow-ups and reports read it); readers show the receipt on top of it.
"""

from __future__ import annotations

from typing import Final

from broadcaster.store.sql import Database

FINAL: Final = {"delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "undelivered"}


class SqlReceipts:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, message_sid: str, status: str, error_code: str | None, *, now: float) -> bool:
        """Store a receipt; False when this exact receipt was already recorded (a replay)."""
        return (await self.db.execute(
            "INSERT INTO receipts (message_sid, status, final, error_code, received_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT (message_sid, status) DO NOTHING",
            (message_sid, status, FINAL.get(status), error_code, now),
        )).rowcount == 1

    async def count(self, message_sid: str) -> int:
        return int((await self.db.execute("SELECT COUNT(*) AS n FROM receipts WHERE message_sid = ?",
                                          (message_sid,))).scalar())

    async def latest(self, alert_id: str) -> dict[str, tuple[str, str | None]]:
        """``provider id -> (latest status, final or None)`` for an alert's SMS deliveries."""
        latest: dict[str, tuple[str, str | None]] = {}
        rows = await self.db.execute(
            "SELECT r.message_sid AS sid, r.status AS status, r.final AS final FROM receipts r"
            " JOIN deliveries d ON d.provider_id = r.message_sid WHERE d.alert_id = ? ORDER BY r.id",
            (alert_id,),
        )
        for r in rows:
            previous = latest.get(r["sid"])
            # A late interim status ("sent") never hides a final one ("delivered").
            if previous is None or r["final"] is not None or previous[1] is None:
                latest[r["sid"]] = (r["status"], r["final"])
        return latest

    async def counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        """``{channel: {state: n}}`` with sent deliveries shown as delivered/undelivered once receipted."""
        counts: dict[str, dict[str, int]] = {}
        rows = await self.db.execute(
            """SELECT d.channel_id AS channel, d.state AS state,
                      (SELECT r.final FROM receipts r WHERE r.message_sid = d.provider_id AND r.final IS NOT NULL
                       ORDER BY r.id DESC LIMIT 1) AS final,
                      COUNT(*) AS n
               FROM deliveries d WHERE d.alert_id = ? GROUP BY 1, 2, 3""",
            (alert_id,),
        )
        for r in rows:
            shown = r["final"] if r["state"] == "sent" and r["final"] else r["state"]
            slot = counts.setdefault(r["channel"], {})
            slot[shown] = slot.get(shown, 0) + int(r["n"])
        return counts

    async def reach(self, alert_id: str) -> list[tuple[str, str, str, str | None, int, int]]:
        """``(channel, language, state, receipt final or None, deliveries, recipients)`` of one alert."""
        rows = await self.db.execute(
            """SELECT d.channel_id AS channel, d.language AS language, d.state AS state,
                      (SELECT r.final FROM receipts r WHERE r.message_sid = d.provider_id AND r.final IS NOT NULL
                       ORDER BY r.id DESC LIMIT 1) AS final,
                      COUNT(*) AS n, COUNT(d.recipient) AS recipients
               FROM deliveries d WHERE d.alert_id = ? GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3""",
            (alert_id,),
        )
        return [(r["channel"], r["language"], r["state"], r["final"], int(r["n"]), int(r["recipients"]))
                for r in rows]
