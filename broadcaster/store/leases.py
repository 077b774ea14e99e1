"""Deliveries and their leases: the engine's side of the store.

A node claims a batch of due deliveries with a lease (their attempt intents
written in the same transaction), sends, and records outcomes in batches. Each
backend implements :meth:`SqlLeases.claim` and :meth:`SqlLeases.record`, its
hot path; everything else here is portable.

Delivery states::

    pending ──claim──▶ sending ──▶ sent
       ▲                  │  ├──▶ failed     permanent error, or gave up at expiry
       └──── retry ───────┘  └──▶ unknown    the request may have left; reconcile first
    pending ──(past expires)──▶ expired
    pending ──(cancelled)──────▶ withdrawn

Only a delivery's latest attempt may move it, and only while it is still
``sending`` or ``unknown``: an outcome that arrives after another node
recovered and claimed it again (a node that stalled past its lease) is kept on
its own attempt row and nothing else. An attempt keeps the first outcome
recorded for it (a recovery's ``unknown`` excepted), so a batch written twice
changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final

from broadcaster.states import DeliveryState, Mode, Outcome
from broadcaster.store.records import AttemptResult, Claimed
from broadcaster.store.sql import Database, atomically, marks

_OPEN: Final = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.UNKNOWN)
# Literal, not bound: the claim index (migration 0003) is partial on exactly this condition, and a
# planner can only use it when the query states it in the same words.
DUE: Final = f"state IN ('{DeliveryState.PENDING}', '{DeliveryState.UNKNOWN}')"
SENDING: Final = f"state = '{DeliveryState.SENDING}'"
# Only a delivery's latest attempt moves it, and only while no other outcome has: see the module docstring.
MOVABLE: Final = f"state IN ('{DeliveryState.SENDING}', '{DeliveryState.UNKNOWN}')"
# An attempt takes its first outcome and keeps it; only the 'unknown' a recovery closed it with gives way to the
# stalled node's late answer. (A finished attempt is append-only: migration 0006's trigger refuses the rest.)
OPEN_ATTEMPT: Final = f"(outcome IS NULL OR outcome = '{Outcome.UNKNOWN}')"


def scope_sql(alert_ids: Sequence[str] | None, modes: Sequence[Mode] | None) -> tuple[str, tuple[str, ...]]:
    """``AND …`` restricting deliveries to some alerts and/or to alerts of some modes."""
    sql, params = "", tuple[str, ...]()
    if alert_ids is not None:
        sql += f" AND alert_id IN ({marks(alert_ids)})"
        params += tuple(alert_ids)
    if modes is not None:
        sql += f" AND alert_id IN (SELECT id FROM alerts WHERE mode IN ({marks(modes)}))"
        params += tuple(str(m) for m in modes)
    return sql, params


class SqlLeases:
    """Claims, outcomes, expiry and recovery of deliveries; the backend adds claim and record."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, channel_id: str, *, limit: int, now: float, lease_s: float, owner: str,
                    alert_ids: Sequence[str] | None = None, modes: Sequence[Mode] | None = None) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries of ``channel_id`` (of ``alert_ids``, of alerts in ``modes``).

        Each claimed delivery has its attempt row written in the same
        transaction. Concurrent claimers, in this process or on other nodes,
        never get the same delivery.
        """
        raise NotImplementedError

    async def record(self, results: Sequence[AttemptResult]) -> None:
        """Write a batch of attempt outcomes and move each delivery (latest attempt only) in one transaction."""
        raise NotImplementedError

    async def next_due(self, channel_id: str, *, alert_ids: Sequence[str] | None = None,
                       modes: Sequence[Mode] | None = None) -> float | None:
        scope, params = scope_sql(alert_ids, modes)
        value = (await self.db.execute(
            f"SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE channel_id = ?"
            f" AND {DUE} AND next_attempt_at IS NOT NULL {scope}",
            (channel_id, *params),
        )).scalar()
        return float(value) if value is not None else None

    async def expire(self, now: float, alert_ids: Sequence[str] | None = None) -> int:
        """Deliveries of alerts past ``expires`` that never went out: marked expired, never attempted."""
        scope, params = scope_sql(alert_ids, None)
        return (await self.db.execute(
            f"UPDATE deliveries SET state = ?, last_error = 'alert expired before delivery', next_attempt_at = NULL"
            f" WHERE {DUE} {scope} AND alert_id IN (SELECT id FROM alerts WHERE expires_at <= ?)",
            (DeliveryState.EXPIRED, *params, now),
        )).rowcount

    async def move(self, from_channel: str, to_channel: str, *, now: float, detail: str, owner: str, limit: int,
                   home: str | None = None, alert_ids: Sequence[str] | None = None,
                   modes: Sequence[Mode] | None = None) -> int:
        """Move up to ``limit`` pending deliveries of ``from_channel`` to ``to_channel`` (failover), in one
        transaction: each due at once on its new channel, with a ``moved`` row saying ``detail`` in its log.

        Only ``pending`` deliveries move: one being sent is leased by its node, and one whose outcome is
        unknown is reconciled where it was sent, never moved. ``home`` moves only deliveries the outbox gave
        that channel (moving back to it). ``home_channel`` keeps the channel a delivery was first given.
        """
        scope, params = scope_sql(alert_ids, modes)
        pending = f"state = '{DeliveryState.PENDING}'"
        home_sql, home_params = (" AND home_channel = ?", (home,)) if home is not None else ("", ())

        async def work(tx: Database) -> int:
            moved = [r["id"] for r in await tx.execute(
                f"UPDATE deliveries SET channel_id = ?, home_channel = COALESCE(home_channel, channel_id),"
                f" next_attempt_at = ? WHERE channel_id = ? AND {pending} AND id IN ("
                f"SELECT id FROM deliveries WHERE channel_id = ? AND {pending}{home_sql} {scope}"
                f" ORDER BY id LIMIT ?) RETURNING id",
                (to_channel, now, from_channel, from_channel, *home_params, *params, limit))]
            if moved:
                await tx.execute(
                    f"INSERT INTO attempts (delivery_id, attempt, started_at, finished_at, outcome, detail, node,"
                    f" channel_id) SELECT id, attempts, ?, ?, ?, ?, ?, ? FROM deliveries WHERE id IN ({marks(moved)})",
                    (now, now, Outcome.MOVED, detail, owner, to_channel, *moved))
            return len(moved)

        return await atomically(self.db, work)

    async def owners(self) -> set[str]:
        """The lease owners of every delivery now ``sending``."""
        rows = await self.db.execute(f"SELECT DISTINCT lease_owner FROM deliveries WHERE {SENDING}")
        return {r["lease_owner"] for r in rows if r["lease_owner"]}

    async def recover(self, now: float, dead: Collection[str]) -> int:
        """Deliveries left ``sending`` by a node that died or stalled: they become ``unknown``.

        A lease is orphaned when it ran out, or when its owner is in ``dead``.
        Its open attempt is closed as unknown, and the next claim reconciles the
        delivery with the provider before any resend.
        """
        owners = sorted(dead)
        where = f"{SENDING} AND (lease_until <= ? OR lease_owner IN ({marks(owners)}))"
        params = (now, *owners)

        async def work(tx: Database) -> int:
            await tx.execute(
                f"UPDATE attempts SET outcome = ?, finished_at = ?, detail = 'the node ended or stalled mid-attempt'"
                f" WHERE outcome IS NULL AND delivery_id IN (SELECT id FROM deliveries WHERE {where})",
                (Outcome.UNKNOWN, now, *params))
            return (await tx.execute(
                f"UPDATE deliveries SET state = ?, next_attempt_at = ?, lease_until = NULL, lease_owner = NULL"
                f" WHERE {where}", (DeliveryState.UNKNOWN, now, *params))).rowcount

        return await atomically(self.db, work)

    async def queue_depths(self) -> dict[str, dict[str, int]]:
        """``channel -> {state: count}`` of deliveries not yet finished, over every alert."""
        depths: dict[str, dict[str, int]] = {}
        for r in await self.db.execute(
            f"SELECT channel_id, state, COUNT(*) AS n FROM deliveries WHERE state IN ({marks(_OPEN)})"
            " GROUP BY channel_id, state", _OPEN,
        ):
            depths.setdefault(r["channel_id"], {})[r["state"]] = int(r["n"])
        return depths
