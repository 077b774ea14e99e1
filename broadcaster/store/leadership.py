"""Who leads the runbook scheduler: a lease on a row of ``leadership``, on the database's clock.

The holder renews its lease every poll. Another host takes the lead only once
the lease has run out by the database's clock, so a leader that stalls (a GC
pause, a frozen VM) loses it after ``lease_s``; it knows so by its own
monotonic clock (see :class:`broadcaster.runbooks.scheduler.Host`), and steps
down before anyone else can step up. Both backends use the same statement.
"""

from __future__ import annotations

from broadcaster.store.sql import Database


class SqlLeadership:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def try_lead(self, name: str, holder: str, lease_s: float) -> bool:
        """Take the lead of ``name`` if nobody holds a live lease, or renew ours; True if ``holder`` leads."""
        now = self.db.now_sql
        row = (await self.db.execute(
            f"INSERT INTO leadership (name, holder, lease_until, since) VALUES (?, ?, {now} + ?, {now})"
            f" ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until,"
            f" since = CASE WHEN leadership.holder = excluded.holder THEN leadership.since ELSE excluded.since END"
            f" WHERE leadership.holder = excluded.holder OR leadership.lease_until < {now}"
            f" RETURNING holder",
            (name, holder, lease_s),
        )).one()
        return row is not None and row["holder"] == holder

    async def release(self, name: str, holder: str) -> None:
        """Give the lead up now (the next host to poll takes it)."""
        await self.db.execute("DELETE FROM leadership WHERE name = ? AND holder = ?", (name, holder))

    async def holder(self, name: str) -> str | None:
        """Who holds a live lease on ``name``, if anyone."""
        row = (await self.db.execute(
            f"SELECT holder FROM leadership WHERE name = ? AND lease_until >= {self.db.now_sql}", (name,))).one()
        return str(row["holder"]) if row is not None else None

SCHEDULER_LEAD = "scheduler"  # the lease the runbook scheduler host that executes jobs holds
