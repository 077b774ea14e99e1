"""Each channel's send slots, shared by every process on the database (see engine.ratelimit).

A process reserves a block of ``count`` slots ``interval_s`` apart; the next
free slot moves on by the block, so the sum over nodes, ``fire`` commands and
``serve`` never exceeds the channel's rate. Times are the database's clock; the
caller maps them onto its own with the ``now`` returned alongside.
"""

from __future__ import annotations

from broadcaster.store.sql import Database


class SqlSlots:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._greatest = "MAX" if db.dialect == "sqlite" else "GREATEST"

    async def reserve(self, channel_id: str, count: int, interval_s: float) -> tuple[float, float]:
        """Take the channel's next ``count`` slots; returns ``(first slot, now)`` on the database's clock.

        Slots are never handed out twice, nor inside a pause.
        """
        now, greatest, span = self.db.now_sql, self._greatest, count * interval_s
        row = (await self.db.execute(
            f"INSERT INTO rate_slots AS r (channel_id, next_slot) VALUES (?, {now} + ?) ON CONFLICT (channel_id)"
            f" DO UPDATE SET next_slot = {greatest}(r.next_slot, {now}, r.paused_until) + ?"
            f" RETURNING next_slot, {now} AS now",
            (channel_id, span, span),
        )).one()
        assert row is not None  # an upsert with RETURNING always returns its row
        return float(row["next_slot"]) - span, float(row["now"])

    async def pause(self, channel_id: str, seconds: float) -> None:
        """No process gets a slot of ``channel_id`` for ``seconds`` (a provider said 429)."""
        now, greatest = self.db.now_sql, self._greatest
        await self.db.execute(
            f"INSERT INTO rate_slots AS r (channel_id, next_slot, paused_until) VALUES (?, {now} + ?, {now} + ?)"
            f" ON CONFLICT (channel_id) DO UPDATE SET paused_until = {greatest}(r.paused_until, {now} + ?),"
            f" next_slot = {greatest}(r.next_slot, {now} + ?)",
            (channel_id, seconds, seconds, seconds, seconds),
        )
