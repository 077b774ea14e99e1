"""The processes sharing the database: who is alive, and since when (``broadcaster nodes``).

Heartbeats are stamped with the database's clock, so nodes whose own clocks
disagree still judge one another by one clock.
"""

from __future__ import annotations

from collections.abc import Collection

from broadcaster.states import DeliveryState
from broadcaster.store.records import NodeRow
from broadcaster.store.sql import Database, atomically, marks


class SqlNodes:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, node_id: str, role: str) -> None:
        host, _, rest = node_id.partition(":")
        pid = rest.partition(":")[0]
        now = self.db.now_sql
        await self.db.execute(
            f"INSERT INTO nodes (id, host, pid, role, started_at, heartbeat_at) VALUES (?, ?, ?, ?, {now}, {now})",
            (node_id, host, int(pid) if pid.isdigit() else 0, role),
        )

    async def heartbeat(self, node_id: str, lease_until: float) -> int:
        """The node is alive: stamp it and renew its leases to ``lease_until``; returns how many it renewed.

        Leases are judged on the claimers' wall clocks (claim and recover pass
        theirs); silence is judged on the database's.
        """

        async def work(tx: Database) -> int:
            await tx.execute(f"UPDATE nodes SET heartbeat_at = {self.db.now_sql} WHERE id = ?", (node_id,))
            return (await tx.execute(
                "UPDATE deliveries SET lease_until = ? WHERE lease_owner = ? AND state = ?",
                (lease_until, node_id, DeliveryState.SENDING),
            )).rowcount

        return await atomically(self.db, work)

    async def stop(self, node_id: str) -> None:
        now = self.db.now_sql
        await self.db.execute(f"UPDATE nodes SET stopped_at = {now}, heartbeat_at = {now} WHERE id = ?", (node_id,))

    async def recent(self, within_s: float) -> list[NodeRow]:
        """Nodes that beat within ``within_s``, or that still hold leases, with the leases each holds."""
        rows = await self.db.execute(
            f"""SELECT n.id AS id, n.host AS host, n.pid AS pid, n.role AS role, n.started_at AS started_at,
                       n.heartbeat_at AS heartbeat_at, n.stopped_at AS stopped_at,
                       (SELECT COUNT(*) FROM deliveries d WHERE d.lease_owner = n.id AND d.state = ?) AS leases,
                       (SELECT MIN(d.lease_until) FROM deliveries d
                        WHERE d.lease_owner = n.id AND d.state = ?) AS lease_until
                FROM nodes n WHERE n.heartbeat_at >= {self.db.now_sql} - ?
                   OR EXISTS (SELECT 1 FROM deliveries d WHERE d.lease_owner = n.id AND d.state = ?)
                ORDER BY n.started_at""",
            (DeliveryState.SENDING, DeliveryState.SENDING, within_s, DeliveryState.SENDING),
        )
        return [NodeRow(id=r["id"], host=r["host"], pid=r["pid"], role=r["role"], started_at=r["started_at"],
                        heartbeat_at=r["heartbeat_at"], stopped_at=r["stopped_at"], leases=int(r["leases"]),
                        lease_until=r["lease_until"]) for r in rows]

    async def silent(self, after_s: float) -> set[str]:
        """Nodes that have not beaten for ``after_s`` and never said they stopped: dead or stalled."""
        rows = await self.db.execute(
            f"SELECT id FROM nodes WHERE heartbeat_at < {self.db.now_sql} - ? AND stopped_at IS NULL", (after_s,))
        return {r["id"] for r in rows}

    async def gone(self, ids: Collection[str], after_s: float) -> set[str]:
        """Which of ``ids`` stopped, or have been silent for ``after_s``."""
        wanted = sorted(ids)
        if not wanted:
            return set()
        rows = await self.db.execute(
            f"SELECT id FROM nodes WHERE id IN ({marks(wanted)})"
            f" AND (stopped_at IS NOT NULL OR heartbeat_at < {self.db.now_sql} - ?)", (*wanted, after_s))
        return {r["id"] for r in rows}

    async def now(self) -> float:
        """The database's clock, in unix seconds."""
        return float((await self.db.execute(f"SELECT {self.db.now_sql} AS now")).scalar())
