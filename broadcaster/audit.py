"""The audit log: append-only and hash-chained.

Each row is ``seq, at, actor, action, detail`` plus ``prev_hash`` (the hash of
the row before; 64 zeros for the first) and ``hash = sha256(prev_hash +
canonical row)``. The canonical row is the sorted-key JSON of ``seq``, ``at``,
``actor``, ``action`` and ``detail``, so renumbering a row changes its hash.

:func:`verify` walks the chain from seq 1 and names the first row that does not
fit: an edited row fails its own hash, a deleted row leaves a gap in ``seq`` and
a ``prev_hash`` that points at nothing, an inserted row fails its hash or breaks
the link of the row after it. Triggers in the schema refuse UPDATE and DELETE on
both backends (SQLite and PostgreSQL; PostgreSQL's also refuse TRUNCATE), so only
someone who drops them can tamper at all; the chain shows that they did.

:meth:`AuditLog.append` reads the head and inserts the next row in one
``db.transaction(serialized=True)``, which serialises writers on either backend (BEGIN
IMMEDIATE on SQLite, an advisory lock on PostgreSQL): two processes appending at
once never fork the chain, and ``seq`` is the primary key besides.

An unkeyed chain cannot stop someone who rewrites every row after the one they
change; ``broadcaster audit verify`` prints the head hash so that operators can
note it elsewhere and compare later.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from broadcaster.store.sql import Database

GENESIS: Final = "0" * 64
ACTIONS: Final = (
    "config_load", "user_add", "login_failure", "forbidden", "rate_limited", "fire", "confirm", "update",
    "cancel", "approval", "confirmation_expired", "runbook_rehearse", "runbook_run", "runbook_stop",
    "release_held",
    "user_remove", "user_role", "user_rotate", "schedule",
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A row to append once something has happened (a fire is audited once its outbox is committed)."""

    actor: str
    action: str
    detail: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    at: str
    actor: str
    action: str
    detail: str  # canonical JSON text, exactly as hashed
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action,
                "detail": orjson.loads(self.detail), "hash": self.hash}


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    problem: str = ""


def row_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, detail: str) -> str:
    canonical = orjson.dumps(
        {"seq": seq, "at": at, "actor": actor, "action": action, "detail": detail}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")


class AuditLog:
    """Appends to and reads the ``audit`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(self, actor: str, action: str, detail: Mapping[str, Any], *, now: float) -> AuditRow:
        """Add one row at the head of the chain (atomic across processes: one serialised writer transaction)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        text = orjson.dumps(dict(detail), option=orjson.OPT_SORT_KEYS).decode()
        at = _iso(now)
        async with self.db.transaction(serialized=True) as tx:
            last = (await tx.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")).one()
            seq, prev = (int(last["seq"]) + 1, str(last["hash"])) if last else (1, GENESIS)
            digest = row_hash(prev, seq, at, actor, action, text)
            await tx.execute(
                "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
                (seq, at, actor, action, text, prev, digest),
            )
        return AuditRow(seq, at, actor, action, text, prev, digest)

    async def rows(self) -> AsyncIterator[AuditRow]:
        """Every row in seq order (a forged row numbered 0 or below included), fetched page by page."""
        after: int | None = None
        while True:
            page = (await self.db.execute(
                f"SELECT {_COLUMNS} FROM audit {'WHERE seq > ?' if after is not None else ''} ORDER BY seq LIMIT ?",
                (*((after,) if after is not None else ()), _PAGE))).rows
            for row in page:
                yield _row(row)
            if len(page) < _PAGE:
                return
            after = page[-1]["seq"]

    async def tail(self, action: str | None = None, limit: int = 50) -> list[AuditRow]:
        """The newest rows first, optionally of one action (for tests and the API)."""
        where, params = ("WHERE action = ?", (action,)) if action else ("", ())
        rows = await self.db.execute(f"SELECT {_COLUMNS} FROM audit {where} ORDER BY seq DESC LIMIT ?",
                                     (*params, limit))
        return [_row(r) for r in rows]

    async def verify(self) -> Verdict:
        """Walk the whole chain as it streams in; the verdict names the first bad row."""
        chain = _Chain()
        async for row in self.rows():
            bad = chain.add(row)
            if bad is not None:
                return bad
        return chain.verdict()


_COLUMNS: Final = "seq, at, actor, action, detail, prev_hash, hash"
_PAGE: Final = 5_000


def _row(row: Any) -> AuditRow:
    return AuditRow(seq=row["seq"], at=row["at"], actor=row["actor"], action=row["action"], detail=row["detail"],
                    prev_hash=row["prev_hash"], hash=row["hash"])


def verify(rows: Iterable[AuditRow]) -> Verdict:
    """Walk the chain; the verdict names the first bad row and what is wrong with it."""
    chain = _Chain()
    for row in rows:
        bad = chain.add(row)
        if bad is not None:
            return bad
    return chain.verdict()


class _Chain:
    """The walk of :func:`verify`, one row at a time."""

    def __init__(self) -> None:
        self.expected_seq, self.prev_hash, self.count = 1, GENESIS, 0

    def add(self, row: AuditRow) -> Verdict | None:
        """None while the chain holds; the failing verdict at the first row that breaks it."""
        self.count += 1
        problem = _problem(row, self.expected_seq, self.prev_hash)
        if problem:
            return Verdict(False, self.count, row.seq, row.hash, bad_seq=row.seq, problem=problem)
        self.expected_seq, self.prev_hash = row.seq + 1, row.hash
        return None

    def verdict(self) -> Verdict:
        return Verdict(True, self.count, self.expected_seq - 1, self.prev_hash)


def _problem(row: AuditRow, expected_seq: int, prev_hash: str) -> str:
    if not isinstance(row.seq, int) or row.seq < expected_seq:
        return f"row {row.seq} comes before row {expected_seq}, where no row belongs: inserted"
    if row.seq > expected_seq:
        missing = f"row {expected_seq}" if row.seq == expected_seq + 1 else f"rows {expected_seq}-{row.seq - 1}"
        return f"{missing} missing before row {row.seq}: deleted"
    if row.prev_hash != prev_hash:
        return (f"row {row.seq} does not link to row {row.seq - 1} (prev_hash differs): a row was inserted, "
                "deleted or rewritten before it")
    if row_hash(row.prev_hash, row.seq, row.at, row.actor, row.action, row.detail) != row.hash:
        return f"row {row.seq} does not match its hash: edited, or inserted by hand"
    return ""
