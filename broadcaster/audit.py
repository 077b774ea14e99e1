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
change, nor show that rows were cut from its end. ``broadcaster audit head``
prints the head as ``HASH:COUNT`` for operators to keep elsewhere;
``broadcaster audit verify --expect HASH:COUNT`` then finds a log that ends
before that row (its tail was cut) or whose row COUNT no longer has that hash
(rewritten up to it).

Alerts, their messages and every delivery's final state are anchored to this
chain (:mod:`broadcaster.anchors`), so ``verify`` checks those too.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from broadcaster.errors import InputError
from broadcaster.store.sql import Database

GENESIS: Final = "0" * 64
ACTIONS: Final = (
    "config_load", "user_add", "login_failure", "forbidden", "rate_limited", "fire", "confirm", "update",
    "cancel", "approval", "confirmation_expired", "runbook_rehearse", "runbook_run", "runbook_stop",
    "release_held", "alert_sealed",
    "user_remove", "user_role", "user_rotate", "schedule", "database_restore",
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
class Head:
    """The head of the chain as an operator records it elsewhere: ``HASH:COUNT``."""

    hash: str
    count: int

    def __str__(self) -> str:
        return f"{self.hash}:{self.count}"

    @classmethod
    def parse(cls, text: str, *, where: str = "--expect") -> Head:
        digest, colon, count = text.strip().partition(":")
        if not colon or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()) \
                or not count.isdigit():
            raise InputError(f"{text.strip()[:80]!r} is not a head as `broadcaster audit head` prints it: "
                             "64 hex digits, a colon, the row count", where=where)
        return cls(digest.lower(), int(count))


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
        async with self.db.transaction(serialized=True) as tx:
            return await append_in(tx, actor, action, detail, now=now)

    async def head(self) -> Head:
        """The newest row's hash and number (``GENESIS:0`` for an empty log), for ``broadcaster audit head``."""
        last = (await self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")).one()
        return Head(str(last["hash"]), int(last["seq"])) if last else Head(GENESIS, 0)

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

    async def verify(self, *, expect: Head | None = None,
                     observe: Callable[[AuditRow], None] | None = None) -> Verdict:
        """Walk the whole chain as it streams in; the verdict names the first bad row.

        ``expect`` is a head recorded earlier: the log must still hold that row with that
        hash. ``observe`` sees every row that checked out, in order (the anchors collect theirs).
        """
        chain = _Chain(expect)
        async for row in self.rows():
            bad = chain.add(row)
            if bad is not None:
                return bad
            if observe is not None:
                observe(row)
        return chain.verdict()


async def append_in(tx: Database, actor: str, action: str, detail: Mapping[str, Any], *, now: float) -> AuditRow:
    """Add one row at the head of the chain inside ``tx``, a ``transaction(serialized=True)`` the caller holds
    (so that what the row vouches for is written in the same transaction: a seal)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    text = orjson.dumps(dict(detail), option=orjson.OPT_SORT_KEYS).decode()
    at = _iso(now)
    last = (await tx.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")).one()
    seq, prev = (int(last["seq"]) + 1, str(last["hash"])) if last else (1, GENESIS)
    digest = row_hash(prev, seq, at, actor, action, text)
    await tx.execute(
        "INSERT INTO audit (seq, at, actor, action, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?)",
        (seq, at, actor, action, text, prev, digest),
    )
    return AuditRow(seq, at, actor, action, text, prev, digest)


_COLUMNS: Final = "seq, at, actor, action, detail, prev_hash, hash"
_PAGE: Final = 5_000


def _row(row: Any) -> AuditRow:
    return AuditRow(seq=row["seq"], at=row["at"], actor=row["actor"], action=row["action"], detail=row["detail"],
                    prev_hash=row["prev_hash"], hash=row["hash"])


def verify(rows: Iterable[AuditRow], *, expect: Head | None = None) -> Verdict:
    """Walk the chain; the verdict names the first bad row and what is wrong with it."""
    chain = _Chain(expect)
    for row in rows:
        bad = chain.add(row)
        if bad is not None:
            return bad
    return chain.verdict()


class _Chain:
    """The walk of :func:`verify`, one row at a time."""

    def __init__(self, expect: Head | None = None) -> None:
        self.expected_seq, self.prev_hash, self.count = 1, GENESIS, 0
        self.expect = expect

    def add(self, row: AuditRow) -> Verdict | None:
        """None while the chain holds; the failing verdict at the first row that breaks it."""
        self.count += 1
        problem = _problem(row, self.expected_seq, self.prev_hash)
        if not problem and self.expect is not None and row.seq == self.expect.count and row.hash != self.expect.hash:
            problem = (f"row {row.seq} is not the row recorded as the head {self.expect}: the log was rewritten "
                       f"at or before row {row.seq}")
        if problem:
            return Verdict(False, self.count, row.seq, row.hash, bad_seq=row.seq, problem=problem)
        self.expected_seq, self.prev_hash = row.seq + 1, row.hash
        return None

    def verdict(self) -> Verdict:
        head = self.expected_seq - 1
        if self.expect is not None and head < self.expect.count:
            cut = f"row {self.expect.count} was" if head + 1 == self.expect.count else \
                f"rows {head + 1}-{self.expect.count} were"
            return Verdict(False, self.count, head, self.prev_hash, bad_seq=head + 1,
                           problem=f"the log ends at row {head}, but its head was recorded as {self.expect}: "
                                   f"{cut} cut from its end")
        return Verdict(True, self.count, head, self.prev_hash)


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
