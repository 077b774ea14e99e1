"""Two-person fires (``pending_fires``): a live alert from a ``two_person`` template waits here for a second officer.

Nothing is committed to the outbox while a fire waits: only the request (template,
checked inputs, areas, selection) is stored. On confirmation it is planned again
(so a template whose approval went stale in the meantime is still refused) under
the alert id the first officer was given. The claim from ``awaiting_confirmation``
to ``confirmed`` is one conditional UPDATE, so two confirmations cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from broadcaster.states import Mode
from broadcaster.store.sql import Database, marks

AWAITING: Final = "awaiting_confirmation"
CONFIRMED: Final = "confirmed"
NOT_CONFIRMED: Final = "not_confirmed"  # the window closed first
WITHDRAWN: Final = "withdrawn"  # its runbook run was stopped before anyone confirmed it


@dataclass(frozen=True, slots=True)
class PendingFire:
    alert_id: str
    template: str
    mode: str
    request: dict[str, Any]
    requested_by: str
    requested_at: float
    confirm_by: float
    state: str
    confirmed_by: str | None
    confirmed_at: float | None

    def state_at(self, now: float) -> str:
        return NOT_CONFIRMED if self.state == AWAITING and now > self.confirm_by else self.state


_COLUMNS: Final = ("alert_id, template, mode, request, requested_by, requested_at, confirm_by, state, confirmed_by,"
                   " confirmed_at")


def _row(row: Any) -> PendingFire:
    return PendingFire(
        alert_id=row["alert_id"], template=row["template"], mode=row["mode"], request=orjson.loads(row["request"]),
        requested_by=row["requested_by"], requested_at=row["requested_at"], confirm_by=row["confirm_by"],
        state=row["state"], confirmed_by=row["confirmed_by"], confirmed_at=row["confirmed_at"])


class SqlPending:
    """The ``pending_fires`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, alert_id: str, template: str, mode: str, request: dict[str, Any], requested_by: str, *,
                  now: float, window_s: float) -> PendingFire:
        await self.db.execute(
            f"INSERT INTO pending_fires ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,NULL,NULL)",
            (alert_id, template, mode, orjson.dumps(request).decode(), requested_by, now, now + window_s, AWAITING),
        )
        found = await self.get(alert_id)
        assert found is not None
        return found

    async def get(self, alert_id: str) -> PendingFire | None:
        row = (await self.db.execute(f"SELECT {_COLUMNS} FROM pending_fires WHERE alert_id = ?", (alert_id,))).one()
        return _row(row) if row is not None else None

    async def recent(self, limit: int = 50, modes: Sequence[Mode] | None = None) -> list[PendingFire]:
        """The newest unconfirmed fires first; only those of ``modes`` when given."""
        if modes is None:
            rows = await self.db.execute(
                f"SELECT {_COLUMNS} FROM pending_fires WHERE state != ? ORDER BY requested_at DESC LIMIT ?",
                (CONFIRMED, limit))
        else:
            chosen = [str(m) for m in modes] or [""]
            rows = await self.db.execute(
                f"SELECT {_COLUMNS} FROM pending_fires WHERE state != ? AND mode IN ({marks(chosen)})"
                " ORDER BY requested_at DESC LIMIT ?", (CONFIRMED, *chosen, limit))
        return [_row(r) for r in rows]

    async def claim(self, alert_id: str, confirmed_by: str, *, now: float) -> bool:
        """Move an awaiting fire to confirmed; False if someone else did, or the window closed."""
        return (await self.db.execute(
            "UPDATE pending_fires SET state = ?, confirmed_by = ?, confirmed_at = ?"
            " WHERE alert_id = ? AND state = ? AND confirm_by >= ?",
            (CONFIRMED, confirmed_by, now, alert_id, AWAITING, now),
        )).rowcount == 1

    async def release(self, alert_id: str) -> None:
        """Undo a claim whose delivery could not start (the fire may be confirmed again)."""
        await self.db.execute(
            "UPDATE pending_fires SET state = ?, confirmed_by = NULL, confirmed_at = NULL WHERE alert_id = ?",
            (AWAITING, alert_id))

    async def withdraw(self, alert_id: str) -> bool:
        """Close an awaiting fire that must no longer go out; False if it was confirmed (or closed) first."""
        return (await self.db.execute(
            "UPDATE pending_fires SET state = ? WHERE alert_id = ? AND state = ?", (WITHDRAWN, alert_id, AWAITING),
        )).rowcount == 1

    async def close_expired(self, alert_id: str, *, now: float) -> bool:
        return (await self.db.execute(
            "UPDATE pending_fires SET state = ? WHERE alert_id = ? AND state = ? AND confirm_by < ?",
            (NOT_CONFIRMED, alert_id, AWAITING, now),
        )).rowcount == 1
