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
``db.transaction()``, which serialises writers on either backend (BEGIN
IMMEDIATE on SQLite, an advisory lock on PostgreSQL): two processes appending at
once never fork the chain, and ``seq`` is the primary key besides.

An unkeyed chain cannot stop someone who rewrites every row after the one they
change; ``broadcaster audit verify`` prints the head hash so that operators can
note it elsewhere and compare later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
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
)


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

    def append(self, actor: str, action: str, detail: Mapping[str, Any], *, now: float) -> AuditRow:
        """Add one row at the head of the chain (atomic across processes: one writer transaction)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        text = orjson.dumps(dict(detail), option=orjson.OPT_SORT_KEYS).decode()
        at = _iso(now)
        with self.db.transaction():
            last = self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
            digest = row_hash(prev, seq, at, actor, action, text)
            self.db.execute(
                "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
                (seq, at, actor, action, text, prev, digest),
            )
        return AuditRow(seq, at, actor, action, text, prev, digest)

    def rows(self) -> Iterator[AuditRow]:
        """Every row in seq order: a forged row numbered 0 or below included."""
        cursor = self.db.execute("SELECT seq, at, actor, action, detail, prev_hash, hash FROM audit ORDER BY seq")
        for row in cursor:
            yield AuditRow(*row)

    def tail(self, action: str | None = None, limit: int = 50) -> list[AuditRow]:
        """The newest rows first, optionally of one action (for tests and the API)."""
        where, params = ("WHERE action = ?", (action,)) if action else ("", ())
        rows = self.db.execute(
            f"SELECT seq, at, actor, action, detail, prev_hash, hash FROM audit {where} ORDER BY seq DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [AuditRow(*r) for r in rows]

    def verify(self) -> Verdict:
        return verify(self.rows())


def verify(rows: Iterator[AuditRow]) -> Verdict:
    """Walk the chain; the verdict names the first bad row and what is wrong with it."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for row in rows:
        count += 1
        problem = _problem(row, expected_seq, prev_hash)
        if problem:
            return Verdict(False, count, row.seq, row.hash, bad_seq=row.seq, problem=problem)
        expected_seq, prev_hash = row.seq + 1, row.hash
    return Verdict(True, count, expected_seq - 1, prev_hash)


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
