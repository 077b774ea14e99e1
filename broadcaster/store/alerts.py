"""Alerts and their deliveries, as everyone but the claim path reads and changes them.

Portable SQL over :class:`~broadcaster.store.sql.Database`; each backend adds
only :meth:`SqlAlerts.create`, the outbox commit, which is its hot path
(SQLite inserts in chunks that yield to the loop; PostgreSQL uses COPY).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any, Final

import orjson

from broadcaster.errors import Conflict, InputError
from broadcaster.states import DeliveryState, Mode, MsgType, Outcome, StepState
from broadcaster.store.records import (
    AlertRecord,
    AttemptRow,
    AudienceCopy,
    DeliveryRow,
    MessageRecord,
    NewDelivery,
    StepClaim,
)
from broadcaster.store.sql import Database, marks

PAGE: Final = 5_000  # rows per round trip when streaming a large alert
NO_LIMIT: Final = 2**62  # "LIMIT ALL" in a form both dialects take
ALERT_COLUMNS: Final = ("id, template, template_hash, mode, msg_type, refs, sent_at, expires_at, areas, channels,"
                        " inputs, forms, created_by, cap")
# A delivery of one channel: given to it by the outbox, or moved to it by failover, or moved away (home_channel).
ON_CHANNEL: Final = "(channel_id = ? OR home_channel = ?)"
DELIVERY_COLUMNS: Final = ("id, alert_id, channel_id, recipient, language, state, attempts, provider_id, last_error,"
                           " home_channel")
THREAD_DEPTH: Final = 1_000  # an update of an update of ...: far more than any real thread
THREAD_LIMIT: Final = 1_000
_OPEN: Final = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.UNKNOWN)


def dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def alert_record(row: Any) -> AlertRecord:
    return AlertRecord(
        id=row["id"], template=row["template"], template_hash=row["template_hash"], mode=Mode(row["mode"]),
        msg_type=MsgType(row["msg_type"]), references=row["refs"], sent_at=row["sent_at"],
        expires_at=row["expires_at"], areas=tuple(orjson.loads(row["areas"])),
        channels=tuple(orjson.loads(row["channels"])), inputs=orjson.loads(row["inputs"]),
        forms=orjson.loads(row["forms"]), created_by=row["created_by"], cap=row["cap"],
    )


def alert_params(alert: AlertRecord) -> tuple[Any, ...]:
    """``alert`` in the order of :data:`ALERT_COLUMNS`."""
    return (alert.id, alert.template, alert.template_hash, str(alert.mode), str(alert.msg_type), alert.references,
            alert.sent_at, alert.expires_at, dumps(list(alert.areas)), dumps(list(alert.channels)),
            dumps(alert.inputs), dumps(alert.forms), alert.created_by, alert.cap)


def delivery_row(row: Any) -> DeliveryRow:
    return DeliveryRow(id=row["id"], alert_id=row["alert_id"], channel_id=row["channel_id"],
                       recipient=row["recipient"], language=row["language"], state=DeliveryState(row["state"]),
                       attempts=row["attempts"], provider_id=row["provider_id"], last_error=row["last_error"],
                       home_channel=row["home_channel"])


class SqlAlerts:
    """Alert rows, their messages and deliveries; the backend adds :meth:`create`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, alert: AlertRecord, messages: Sequence[MessageRecord],
                     deliveries: AsyncIterable[Sequence[NewDelivery]],
                     copies: Sequence[AudienceCopy] = (), step: StepClaim | None = None) -> tuple[int, int]:
        """Commit ``alert`` with every delivery ``pending`` in one transaction, before any network call.

        ``deliveries`` arrive in batches (an SMS list is streamed, never held
        whole); ``copies`` reach an earlier alert's recipients inside the
        database. One SMS per phone per alert: a phone offered twice is skipped.
        A runbook step's alert names its ``step`` claim, checked and written in
        the same transaction (:class:`~broadcaster.store.records.StepClaim`).
        Returns ``(deliveries created, duplicates skipped)``.
        """
        raise NotImplementedError

    async def get(self, alert_id: str) -> AlertRecord:
        found = await self.find(alert_id)
        if found is None:
            raise InputError(f"no alert with id {alert_id!r}", where=self.db.where)
        return found

    async def find(self, alert_id: str) -> AlertRecord | None:
        row = (await self.db.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))).one()
        return alert_record(row) if row is not None else None

    async def recent(self, limit: int = 50, modes: Sequence[Mode] | None = None) -> list[AlertRecord]:
        """The newest alerts first; only those of ``modes`` when given (the console hides dry-runs so)."""
        if modes is None:
            rows = await self.db.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts ORDER BY sent_at DESC, id DESC LIMIT ?", (limit,))
        else:
            chosen = [str(m) for m in modes] or [""]
            rows = await self.db.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE mode IN ({marks(chosen)})"
                " ORDER BY sent_at DESC, id DESC LIMIT ?", (*chosen, limit))
        return [alert_record(r) for r in rows]

    async def current(self, mode: Mode, now: float, limit: int) -> list[AlertRecord]:
        """Alerts of ``mode`` not yet expired at ``now``, newest first (the public feed)."""
        rows = await self.db.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE mode = ? AND expires_at > ?"
            " ORDER BY sent_at DESC, id DESC LIMIT ?", (str(mode), now, limit))
        return [alert_record(r) for r in rows]

    async def thread(self, alert_id: str, now: float) -> list[AlertRecord]:
        """The alerts of ``alert_id``'s thread (its originals up the chain and every follow-up of them) not yet
        expired at ``now``, oldest first: what an update or a cancel of it references."""
        seen: dict[str, AlertRecord] = {}
        root = await self.get(alert_id)
        for _ in range(THREAD_DEPTH):  # up to the first alert of the thread
            if root.references is None:
                break
            up = await self.find(root.references)
            if up is None:
                break
            root = up
        frontier = [root]
        seen[root.id] = root
        while frontier and len(seen) < THREAD_LIMIT:
            rows = await self.db.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE refs IN ({marks(frontier)}) ORDER BY sent_at, id",
                tuple(a.id for a in frontier))
            frontier = [a for a in map(alert_record, rows) if a.id not in seen]
            seen.update((a.id, a) for a in frontier)
        return sorted((a for a in seen.values() if a.expires_at > now), key=lambda a: (a.sent_at, a.id))

    async def withdraw(self, alert_id: str, reason: str) -> int:
        """Stop deliveries of ``alert_id`` that have not gone out (a cancel supersedes them)."""
        return await withdraw_undelivered(self.db, alert_id, reason)

    async def audience(self, alert_id: str, channel_id: str, states: Sequence[DeliveryState]) -> dict[str, int]:
        """Recipients per language an alert has on one channel in ``states`` (a follow-up's audience); the SMS
        failover moved to the channel's fallback count as the channel's."""
        rows = await self.db.execute(
            f"SELECT language, COUNT(*) AS n FROM deliveries WHERE alert_id = ? AND {ON_CHANNEL}"
            f" AND recipient IS NOT NULL AND state IN ({marks(states)}) GROUP BY language",
            (alert_id, channel_id, channel_id, *states))
        return {r["language"]: int(r["n"]) for r in rows}

    async def provider_ids(self, alert_id: str) -> dict[tuple[str, str | None, str], str]:
        """``(channel, recipient, language) -> provider id`` of sent deliveries (for threading)."""
        rows = await self.db.execute(
            "SELECT channel_id, recipient, language, provider_id FROM deliveries"
            " WHERE alert_id = ? AND state = ? AND provider_id IS NOT NULL", (alert_id, DeliveryState.SENT))
        return {(r["channel_id"], r["recipient"], r["language"]): r["provider_id"] for r in rows}

    async def deliveries(self, alert_id: str, *, limit: int | None = None, offset: int = 0) -> list[DeliveryRow]:
        """An alert's deliveries in order; ``limit`` and ``offset`` page them (each may be given alone)."""
        rows = await self.db.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE alert_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (alert_id, NO_LIMIT if limit is None else limit, offset))
        return [delivery_row(r) for r in rows]

    async def count(self, alert_id: str) -> int:
        return int((await self.db.execute("SELECT COUNT(*) AS n FROM deliveries WHERE alert_id = ?",
                                          (alert_id,))).scalar())

    async def attempts(self, alert_id: str) -> AsyncIterator[AttemptRow]:
        """Every attempt of an alert in order, fetched page by page."""
        after = 0
        while True:
            rows = (await self.db.execute(
                """SELECT a.id AS id, d.alert_id AS alert_id, COALESCE(a.channel_id, d.channel_id) AS channel_id,
                          d.recipient AS recipient,
                          d.language AS language, a.attempt AS attempt, a.outcome AS outcome,
                          a.http_status AS http_status, a.error_code AS error_code, a.provider_id AS provider_id,
                          a.started_at AS started_at, a.finished_at AS finished_at, a.latency_ms AS latency_ms,
                          a.detail AS detail
                   FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                   WHERE d.alert_id = ? AND a.id > ? ORDER BY a.id LIMIT ?""",
                (alert_id, after, PAGE),
            )).rows
            for r in rows:
                yield AttemptRow(
                    alert_id=r["alert_id"], channel=r["channel_id"], recipient=r["recipient"], language=r["language"],
                    attempt=r["attempt"], outcome=Outcome(r["outcome"]) if r["outcome"] else None,
                    http_status=r["http_status"], error_code=r["error_code"], provider_id=r["provider_id"],
                    started_at=r["started_at"], finished_at=r["finished_at"], latency_ms=r["latency_ms"],
                    detail=r["detail"])
            if len(rows) < PAGE:
                return
            after = rows[-1]["id"]

    async def messages(self, alert_id: str) -> list[MessageRecord]:
        """The texts an alert rendered, one per channel and language, by key (without payloads)."""
        rows = await self.db.execute(
            "SELECT key, channel_id, language, text FROM messages WHERE alert_id = ? ORDER BY key", (alert_id,))
        return [MessageRecord(key=r["key"], channel_id=r["channel_id"], language=r["language"], text=r["text"])
                for r in rows]

    async def by_short(self, short: str) -> str | None:
        """The id of the alert whose verification code is ``short`` (migration 0010), or None."""
        value = (await self.db.execute("SELECT alert_id FROM verify_codes WHERE short = ?", (short,))).scalar()
        return str(value) if value is not None else None

    async def verification(self, alert_id: str, *, cancel_ref: str | None = None) -> list[AlertRecord]:
        """One read for the public verification page: the alert and every alert that follows it up: those
        whose ``refs`` name it, and the cancels whose stored CAP ``<references>`` match the LIKE pattern
        ``cancel_ref`` (a cancel of a later update cancels it too). Oldest first, at most 1,000; each record
        carries its verification code. Empty when there is no such alert."""
        cols = ", ".join(f"a.{c.strip()}" for c in ALERT_COLUMNS.split(","))
        also, params = "", [alert_id, alert_id]
        if cancel_ref is not None:
            also, params = " OR (a.msg_type = ? AND a.cap LIKE ?)", [*params, str(MsgType.CANCEL), cancel_ref]
        rows = await self.db.execute(
            f"SELECT {cols}, v.short AS short FROM alerts a LEFT JOIN verify_codes v ON v.alert_id = a.id"
            f" WHERE a.id = ? OR a.refs = ?{also} ORDER BY a.sent_at, a.id LIMIT ?", (*params, THREAD_LIMIT))
        return [dataclasses.replace(alert_record(r), short=r["short"]) for r in rows]

    async def follow_ups(self, alert_id: str) -> list[AlertRecord]:
        """The updates and cancels that reference ``alert_id``, oldest first."""
        rows = await self.db.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE refs = ? ORDER BY sent_at, id", (alert_id,))
        return [alert_record(r) for r in rows]

    async def first_accepted(self, alert_id: str) -> float | None:
        """When a provider first accepted one of the alert's deliveries (its earliest sent attempt), or None."""
        value = (await self.db.execute(
            "SELECT MIN(a.finished_at) AS t FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
            " WHERE d.alert_id = ? AND a.outcome IN (?, ?)", (alert_id, Outcome.SENT, Outcome.RECONCILED))).scalar()
        return float(value) if value is not None else None

    async def state_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        """``channel -> {state: count}`` of one alert's deliveries."""
        counts: dict[str, dict[str, int]] = {}
        for r in await self.db.execute(
            "SELECT channel_id, state, COUNT(*) AS n FROM deliveries WHERE alert_id = ? GROUP BY channel_id, state",
            (alert_id,),
        ):
            counts.setdefault(r["channel_id"], {})[r["state"]] = int(r["n"])
        return counts

    async def unfinished(self) -> list[str]:
        """Alerts with deliveries still pending, leased or unknown (``broadcaster resume``)."""
        rows = await self.db.execute(
            f"SELECT DISTINCT alert_id FROM deliveries WHERE state IN ({marks(_OPEN)}) ORDER BY alert_id", _OPEN)
        return [r["alert_id"] for r in rows]

    async def held(self, alert_id: str | None = None) -> list[DeliveryRow]:
        """Deliveries whose request may have left and that wait for an operator (``on_unknown = "hold"``)."""
        scope, params = ("AND alert_id = ?", (alert_id,)) if alert_id else ("", ())
        rows = await self.db.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE state = ? AND next_attempt_at IS NULL {scope}"
            " ORDER BY id", (DeliveryState.UNKNOWN, *params))
        return [delivery_row(r) for r in rows]

    async def release_held(self, alert_id: str, channel_id: str, *, resend: bool, now: float, note: str) -> int:
        """An operator decided about held deliveries: send them again now, or record them as sent."""
        held = "alert_id = ? AND channel_id = ? AND state = ? AND next_attempt_at IS NULL"
        where = (alert_id, channel_id, DeliveryState.UNKNOWN)
        if resend:  # pending again: the operator checked, so it is sent as new, never held a second time
            return (await self.db.execute(
                f"UPDATE deliveries SET state = ?, next_attempt_at = ?, last_error = ? WHERE {held}",
                (DeliveryState.PENDING, now, note, *where))).rowcount
        return (await self.db.execute(f"UPDATE deliveries SET state = ?, last_error = ? WHERE {held}",
                                      (DeliveryState.SENT, note, *where))).rowcount


def copy_sql(copy: AudienceCopy, message_ids: dict[str, int], alert_id: str, due_at: float
             ) -> tuple[str, tuple[Any, ...]]:
    """One statement that gives a follow-up the recipients an earlier alert had on one channel.

    It runs inside the outbox commit: the recipients never travel through this
    process, and ``ON CONFLICT DO NOTHING`` keeps one delivery per recipient.
    Each copy replies to what the earlier delivery was sent as (its provider id:
    an email's Message-ID threads the follow-up), when it was sent.
    Returns ``(sql, params)``; every copied delivery is due at ``due_at``.
    """
    languages = sorted(copy.keys)
    # Casts, because PostgreSQL cannot infer a parameter's type inside CASE (SQLite accepts them as they are).
    message_case = " ".join("WHEN ? THEN CAST(? AS BIGINT)" for _ in languages)
    language_params: list[Any] = []
    for lang in languages:
        language_params += [lang, message_ids[copy.keys[lang]]]
    sql = (
        "INSERT INTO deliveries (alert_id, channel_id, message_id, language, recipient, reply_to, next_attempt_at)"
        f" SELECT ?, ?, CASE language {message_case} ELSE CAST(? AS BIGINT) END,"
        f" CASE WHEN language IN ({marks(languages)}) THEN language ELSE ? END, recipient, provider_id,"
        f" CAST(? AS DOUBLE PRECISION)"
        f" FROM deliveries WHERE alert_id = ? AND {ON_CHANNEL} AND recipient IS NOT NULL"
        f" AND state IN ({marks(copy.states)}) ORDER BY id ON CONFLICT DO NOTHING"
    )
    return sql, (alert_id, copy.channel_id, *language_params, message_ids[copy.keys[copy.fallback]], *languages,
                 copy.fallback, due_at, copy.from_alert, copy.channel_id, copy.channel_id, *copy.states)


async def withdraw_undelivered(db: Database, alert_id: str, reason: str) -> int:
    """Withdraw the deliveries of ``alert_id`` that have not gone out (pending, or unknown and not resent)."""
    return (await db.execute(
        "UPDATE deliveries SET state = ?, last_error = ?, next_attempt_at = NULL"
        " WHERE alert_id = ? AND state IN (?, ?)",
        (DeliveryState.WITHDRAWN, reason, alert_id, DeliveryState.PENDING, DeliveryState.UNKNOWN),
    )).rowcount


async def insert_head(tx: Database, alert: AlertRecord, messages: Sequence[MessageRecord],
                      step: StepClaim | None, withdraw: str | None) -> dict[str, int]:
    """Inside an outbox commit: the alert, its step claim and its messages; returns each message's id by key.

    A cancel withdraws what its original has not sent yet (``withdraw``) in the same
    transaction: if the cancel cannot be committed, the original is left as it was.
    """
    params = alert_params(alert)
    await tx.execute(f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES ({marks(params)})", params)
    if alert.short is not None:  # its primary key refuses a code another alert holds: nothing is committed
        await tx.execute("INSERT INTO verify_codes (short, alert_id) VALUES (?, ?)", (alert.short, alert.id))
    if step is not None:
        await claim_step(tx, step, alert.id)
    if withdraw is not None:
        await withdraw_undelivered(tx, withdraw, f"withdrawn by cancel {alert.id}")
    message_ids: dict[str, int] = {}
    for m in messages:
        message_ids[m.key] = (await tx.execute(
            "INSERT INTO messages (alert_id, key, channel_id, language, text, payload) VALUES (?,?,?,?,?,?)"
            " RETURNING id", (alert.id, m.key, m.channel_id, m.language, m.text, m.payload))).scalar()
    return message_ids


async def claim_step(tx: Database, step: StepClaim, alert_id: str) -> None:
    """Inside an outbox commit: put the alert on its step's row, only while ``step.owner`` still holds it."""
    held = (await tx.execute(
        "UPDATE run_steps SET alert_id = ? WHERE run_id = ? AND step_id = ? AND occurrence = ? AND state = ?"
        " AND owner = ? AND alert_id IS NULL",
        (alert_id, step.run_id, step.step_id, step.occurrence, StepState.FIRING, step.owner),
    )).rowcount
    if held != 1:
        raise Conflict(f"step {step.step_id} #{step.occurrence} of run {step.run_id} is no longer held by "
                       f"{step.owner} (another scheduler host took it over); this copy was not committed")
