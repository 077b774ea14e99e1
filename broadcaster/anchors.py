"""Every alert and every delivery's final state, anchored to the hash-chained audit log.

An alert is anchored twice, and never once per message sent:

* **at commit**: the ``fire`` / ``update`` / ``cancel`` row (``confirm`` for a two-person
  fire) written once its outbox is committed carries ``alert_sha256``, the sha256 of the alert's row and its messages
  exactly as stored (:func:`plan_sha256`, from the plan in memory: no extra read);
* **once every delivery is final** (sent, failed, expired, withdrawn): an
  ``alert_sealed`` row carries the sha256 of the alert's *seal*, one digest per
  delivery over its final state and every attempt, in delivery id order. The seal
  itself is kept in ``seals`` and written in the same transaction as its row, so one
  digest per delivery lets ``verify`` name the very delivery that changed.

Sealing reads the alert's deliveries once, after the last of them is final, and
hashes them on a worker thread: the hot path (claim, send, record) does nothing
more per SMS. The process that delivered an alert seals it when its run ends
(:func:`seal_finished`); workers sweep for alerts other nodes finished; ``resume``
and ``release`` seal what they finish.

Triggers (migration 0006) refuse UPDATE and DELETE of alerts, messages, seals, a
delivery in a final state and a finished attempt, on both backends. An attempt
that was still ``unknown`` (or open) when its alert was sealed may yet receive a
stalled node's late outcome; the seal lists it and covers only which attempt it
was, so that late, honest write never reads as tampering.

:class:`Anchors` collects the anchors while ``audit verify`` walks the chain, then
checks every alert against them: an alert missing from the log (inserted) or from
the database (deleted), an edited alert or message, an edited final state, attempt
or seal. Alerts committed before anchoring existed (before migration 0006) are
counted, not failed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from broadcaster.audit import AuditRow, append_in
from broadcaster.clock import in_thread
from broadcaster.store import Store
from broadcaster.store.alerts import ALERT_COLUMNS, alert_params
from broadcaster.store.records import AlertRecord, MessageRecord
from broadcaster.store.seals import SEALED_ATTEMPT, SEALED_DELIVERY, SealRow

log = logging.getLogger("broadcaster.audit")

COMMIT_ACTIONS: Final = frozenset({"fire", "update", "cancel", "confirm"})
SEAL_ACTION: Final = "alert_sealed"
SEALER: Final = "broadcaster"  # the actor of seal rows: the system, not a person
_ALERT_FIELDS: Final = tuple(c.strip() for c in ALERT_COLUMNS.split(","))
_DELIVERY_FIELDS: Final = tuple(c.strip() for c in SEALED_DELIVERY.split(","))
_ATTEMPT_FIELDS: Final = tuple(c.strip() for c in SEALED_ATTEMPT.split(","))
_SETTLED: Final = frozenset({"sent", "reconciled", "retry", "failed", "expired"})  # outcomes no late write moves


# --- what is hashed ---------------------------------------------------------------------


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=_bytes)


def _bytes(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    raise TypeError(type(value).__name__)


def alert_sha256(alert: Sequence[Any], messages: Iterable[Sequence[Any]]) -> str:
    """The sha256 of an alert row (:data:`ALERT_COLUMNS` order) and its messages ``(key, channel, language,
    text, payload)``, as stored: times as floats, payloads as hex, messages by key. The row's stored CAP
    document (``cap``) is part of it."""
    values = [float(v) if name in ("sent_at", "expires_at") else v for name, v in zip(_ALERT_FIELDS, alert,
                                                                                       strict=True)]
    if _ALERT_FIELDS[-1] == "cap" and values[-1] is None:
        # An alert from before its CAP document was stored (migration 0008) was anchored without that
        # column: its hash stays what it was. One stored since is covered by it, document and all.
        values.pop()
    rows = sorted([str(m[0]), m[1], m[2], m[3], bytes(m[4]) if m[4] is not None else None] for m in messages)
    return hashlib.sha256(_canonical({"alert": values, "messages": rows})).hexdigest()


def plan_sha256(alert: AlertRecord, messages: Sequence[MessageRecord]) -> str:
    """:func:`alert_sha256` of what a plan commits, computed from the plan itself (no round trip)."""
    return alert_sha256(alert_params(alert), [(m.key, m.channel_id, m.language, m.text, m.payload) for m in messages])


def stored_sha256(alert_row: Any, message_rows: Iterable[Any]) -> str:
    """:func:`alert_sha256` of an alert as the database holds it now."""
    return alert_sha256([alert_row[name] for name in _ALERT_FIELDS],
                        [(m["key"], m["channel_id"], m["language"], m["text"], m["payload"]) for m in message_rows])


def _loose(attempt: Any) -> bool:
    """An attempt a late outcome may still land on: open, or closed as unknown by a recovery."""
    return attempt["outcome"] not in _SETTLED


def delivery_digest(delivery: Any, attempts: Sequence[Any], loose: frozenset[int]) -> str:
    """128 bits of sha256 over a delivery's final state and its attempts (those in ``loose``: only which)."""
    shown = [[a["id"], a["delivery_id"], a["attempt"]] if a["id"] in loose else [a[f] for f in _ATTEMPT_FIELDS]
             for a in attempts]
    return hashlib.sha256(_canonical([[delivery[f] for f in _DELIVERY_FIELDS], shown])).hexdigest()[:32]


def _seal_lines(page: Sequence[tuple[Any, list[Any]]]) -> tuple[list[str], Counter[str]]:
    """One line per delivery, ``id digest[ loose,ids]`` (on a worker thread: CPU work)."""
    lines, states = [], Counter[str]()
    for delivery, attempts in page:
        loose = frozenset(a["id"] for a in attempts if _loose(a))
        line = f"{delivery['id']} {delivery_digest(delivery, attempts, loose)}"
        lines.append(line + (" " + ",".join(str(i) for i in sorted(loose)) if loose else ""))
        states[str(delivery["state"])] += 1
    return lines, states


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


# --- sealing ------------------------------------------------------------------------------


async def seal(store: Store, alert_id: str, *, now: float | None = None) -> AuditRow | None:
    """Seal ``alert_id`` if every delivery of it is final and it has no seal yet; its audit row, else None."""
    if await store.seals.sealed(store.db, alert_id) or not await store.seals.is_final(alert_id):
        return None
    lines: list[str] = []
    states = Counter[str]()
    async for page in store.seals.deliveries(alert_id):
        page_lines, page_states = await in_thread(_seal_lines, page)
        lines += page_lines
        states += page_states
    digests = "\n".join(lines)
    sha = await in_thread(_sha256, digests)
    at = time.time() if now is None else now
    detail = {"alert_id": alert_id, "deliveries": len(lines), "states": dict(states), "sha256": sha}
    async with store.db.transaction(serialized=True) as tx:
        if await store.seals.sealed(tx, alert_id):
            return None  # another process sealed it meanwhile
        row = await append_in(tx, SEALER, SEAL_ACTION, detail, now=at)
        await store.seals.put(tx, SealRow(alert_id, row.seq, at, len(lines), sha, digests))
    return row


async def seal_finished(store: Store, alert_ids: Sequence[str] | None = None, *, limit: int = 100) -> list[str]:
    """Seal ``alert_ids`` that are finished (or, with None, up to ``limit`` finished alerts with no seal yet).

    Returns the alerts sealed. Alerts still delivering are left for later.
    """
    candidates = list(alert_ids) if alert_ids is not None else await store.seals.unsealed(limit)
    return [alert_id for alert_id in candidates if await seal(store, alert_id) is not None]


# --- checking -------------------------------------------------------------------------------


@dataclass
class AnchorVerdict:
    ok: bool = True
    alerts: int = 0  # alerts in the database
    sealed: int = 0  # ... whose seal checked out
    delivering: int = 0  # ... still delivering (or held for an operator): nothing final to seal yet
    unsealed: int = 0  # ... finished, waiting for a worker, `resume` or the next run to seal them
    before_anchoring: int = 0  # ... committed before anchoring existed (no commit anchor to check)
    alert_id: str | None = None
    delivery_id: int | None = None
    problem: str = ""

    def fail(self, alert_id: str, problem: str, delivery_id: int | None = None) -> AnchorVerdict:
        self.ok, self.alert_id, self.delivery_id, self.problem = False, alert_id, delivery_id, problem
        return self


@dataclass
class Anchors:
    """The anchors of the audit log, collected row by row while ``verify`` walks the chain."""

    commits: dict[str, tuple[int, str]] = field(default_factory=dict)  # alert -> (row, alert_sha256)
    seals: dict[str, tuple[int, str]] = field(default_factory=dict)  # alert -> (row, seal sha256)
    conflict: str = ""  # an alert anchored twice with different hashes
    conflicting: str = ""

    def observe(self, row: AuditRow) -> None:
        if row.action not in COMMIT_ACTIONS and row.action != SEAL_ACTION:
            return
        detail = orjson.loads(row.detail)
        alert_id = str(detail.get("alert_id"))
        if row.action == SEAL_ACTION:
            anchored, key = self.seals, "sha256"
        elif "alert_sha256" in detail:
            anchored, key = self.commits, "alert_sha256"
        else:
            return  # a two-person fire held for its second officer: nothing committed yet
        first = anchored.setdefault(alert_id, (row.seq, str(detail.get(key))))
        if first[1] != detail.get(key) and not self.conflict:
            self.conflicting = alert_id
            self.conflict = (f"alert {alert_id} is anchored twice with different hashes (audit rows {first[0]} and "
                             f"{row.seq})")

    async def check(self, store: Store) -> AnchorVerdict:
        """Every alert in the database against its anchors; the verdict names the first alert or delivery that
        does not match (alerts in id order, deliveries in id order)."""
        verdict = AnchorVerdict()
        if self.conflict:
            return verdict.fail(self.conflicting, self.conflict)
        since = await store.seals.anchored_since()
        seen: set[str] = set()
        async for alert_id, sent_at in store.seals.alert_ids():
            seen.add(alert_id)
            verdict.alerts += 1
            problem = await self._commit(store, alert_id, sent_at, since, verdict)
            if problem:
                return verdict.fail(alert_id, problem)
            delivery_id, problem = await self._seal(store, alert_id, verdict)
            if problem:
                return verdict.fail(alert_id, problem, delivery_id)
        for alert_id in sorted(self.commits.keys() - seen):
            return verdict.fail(alert_id, f"alert {alert_id} is in the audit log (row {self.commits[alert_id][0]}) "
                                          "but not in the database: deleted")
        return verdict

    async def _commit(self, store: Store, alert_id: str, sent_at: float, since: float,
                      verdict: AnchorVerdict) -> str:
        anchor = self.commits.get(alert_id)
        if anchor is None:
            if sent_at < since:
                verdict.before_anchoring += 1
                return ""
            return (f"alert {alert_id} is in the database but not in the audit log: inserted by hand, or its "
                    "commit was never audited")
        stored = await store.seals.alert_rows(alert_id)
        if stored is None or stored_sha256(*stored) != anchor[1]:
            return (f"alert {alert_id} does not match its commit anchor (audit row {anchor[0]}): its row or one of "
                    "its messages was edited")
        return ""

    async def _seal(self, store: Store, alert_id: str, verdict: AnchorVerdict) -> tuple[int | None, str]:
        anchor = self.seals.get(alert_id)
        kept = await store.seals.get(alert_id)
        if anchor is None:
            if kept is not None:
                return None, (f"alert {alert_id} has a seal that points at audit row {kept.audit_seq}, which the "
                              "log does not hold: rows were cut from its end, or the seal was forged")
            if await store.seals.is_final(alert_id):
                verdict.unsealed += 1
            else:
                verdict.delivering += 1
            return None, ""
        seq = anchor[0]
        if kept is None:
            return None, f"the seal of alert {alert_id} (audit row {seq}) is gone from the database: deleted"
        if await in_thread(_sha256, kept.digests) != anchor[1]:
            return None, f"the seal of alert {alert_id} does not match audit row {seq}: the seal was edited"
        expected = [line.split() for line in kept.digests.splitlines()]
        position = 0
        async for page in store.seals.deliveries(alert_id):
            for delivery, attempts in page:
                line = expected[position] if position < len(expected) else None
                if line is not None and int(line[0]) < delivery["id"]:
                    return int(line[0]), _gone(alert_id, seq, line[0])
                position += 1
                problem = _changed(alert_id, seq, delivery, attempts, line)
                if problem:
                    return delivery["id"], problem
        if position < len(expected):
            return int(expected[position][0]), _gone(alert_id, seq, expected[position][0])
        verdict.sealed += 1
        return None, ""


def _gone(alert_id: str, seq: int, delivery_id: str) -> str:
    return f"delivery {delivery_id} of alert {alert_id} was sealed (audit row {seq}) but is gone from the database"


def _changed(alert_id: str, seq: int, delivery: Any, attempts: Sequence[Any], line: list[str] | None) -> str:
    where = f"delivery {delivery['id']} of alert {alert_id} ({delivery['channel_id']}" + (
        f" to {delivery['recipient']})" if delivery["recipient"] else ")")
    if line is None or int(line[0]) != delivery["id"]:
        return f"{where} is not in its seal (audit row {seq}): added after the alert was sealed"
    loose = frozenset(int(i) for i in line[2].split(",")) if len(line) > 2 else frozenset()
    if delivery_digest(delivery, attempts, loose) != line[1]:
        return (f"{where} no longer matches its seal (audit row {seq}): its final state or an attempt was edited "
                f"(it is now {delivery['state']}, {len(attempts)} attempt(s))")
    return ""
