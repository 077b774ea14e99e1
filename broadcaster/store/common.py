"""What both backends share: every query off the delivery hot path, in portable SQL.

:class:`SqlStore` reads alerts, deliveries and attempts, expires, withdraws and
recovers deliveries, keeps runbook runs, the node registry and the shared
per-channel send slots, all through :class:`broadcaster.store.sql.Database`.
Each backend adds the hot path: committing an alert, claiming a batch, recording
outcomes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, Final

import orjson

from broadcaster.errors import InputError
from broadcaster.runbooks.records import RunRecord, RunStepRow
from broadcaster.store.base import AlertRecord, AttemptRow, DeliveryRow, NodeRow
from broadcaster.store.sql import Database, marks

PAGE: Final = 5_000  # rows per round trip when streaming a large alert
_DELIVERY_ROW: Final = ("SELECT id, alert_id, channel_id, recipient, language, state, attempts, provider_id,"
                        " last_error FROM deliveries")  # the columns of a DeliveryRow


class SqlStore:
    """Portable half of a store; subclasses set ``db`` and ``where`` and add the hot path."""

    db: Database
    where: str  # names the database in errors

    # --- state changes off the hot path ----------------------------------------------

    def expire(self, now: float, alert_ids: tuple[str, ...] | None = None) -> int:
        """Deliveries of alerts past ``expires`` that never went out: marked expired, never attempted."""
        scope, params = scope_sql(alert_ids)
        return self.db.execute(
            f"""UPDATE deliveries SET state = 'expired', last_error = 'alert expired before delivery',
                next_attempt_at = NULL
            WHERE state IN ('pending', 'unknown') {scope}
              AND alert_id IN (SELECT id FROM alerts WHERE expires_at <= ?)""",
            (*params, now),
        ).rowcount

    def recover_orphans(self, now: float, is_dead: Callable[[str], bool]) -> int:
        """Deliveries left ``sending`` by a process that died: they become ``unknown``.

        A lease is orphaned when it has expired, or when ``is_dead(owner)`` says
        its owner is gone. Their in-flight attempts are closed as unknown, and the
        next claim reconciles them with the provider before any resend.
        """
        owners = [r[0] for r in self.db.execute(
            "SELECT DISTINCT lease_owner FROM deliveries WHERE state = 'sending'")]
        dead = [o for o in owners if is_dead(o or "")]
        recovered = 0
        with self.db.transaction():
            where = f"state = 'sending' AND (lease_until <= ? OR lease_owner IN ({marks(dead) or 'NULL'}))"
            self.db.execute(
                f"UPDATE attempts SET outcome = 'unknown', finished_at = ?, detail = 'process ended mid-attempt'"
                f" WHERE outcome IS NULL AND delivery_id IN (SELECT id FROM deliveries WHERE {where})",
                (now, now, *dead),
            )
            recovered = self.db.execute(
                f"UPDATE deliveries SET state = 'unknown', next_attempt_at = ?, lease_until = NULL,"
                f" lease_owner = NULL WHERE {where}",
                (now, now, *dead),
            ).rowcount
        return recovered

    def withdraw(self, alert_id: str, reason: str) -> int:
        """Stop deliveries of ``alert_id`` that have not gone out (a cancel supersedes them)."""
        return self.db.execute(
            "UPDATE deliveries SET state = 'withdrawn', last_error = ?, next_attempt_at = NULL"
            " WHERE alert_id = ? AND state IN ('pending', 'unknown')",
            (reason, alert_id),
        ).rowcount

    def held(self, alert_id: str | None = None) -> list[DeliveryRow]:
        """Deliveries whose request may have left and that wait for an operator (``on_unknown = "hold"``)."""
        scope, params = scope_sql((alert_id,) if alert_id else None)
        rows = self.db.execute(
            f"{_DELIVERY_ROW} WHERE state = 'unknown' AND next_attempt_at IS NULL {scope} ORDER BY id",
            params,
        ).fetchall()
        return [DeliveryRow(*r) for r in rows]

    def release_held(self, alert_id: str, channel_id: str, *, resend: bool, now: float, note: str) -> int:
        """An operator decided about held deliveries: send them again now, or record them as sent."""
        held = "alert_id = ? AND channel_id = ? AND state = 'unknown' AND next_attempt_at IS NULL"
        if resend:
            return self.db.execute(f"UPDATE deliveries SET next_attempt_at = ?, last_error = ? WHERE {held}",
                                   (now, note, alert_id, channel_id)).rowcount
        return self.db.execute(f"UPDATE deliveries SET state = 'sent', last_error = ? WHERE {held}",
                               (note, alert_id, channel_id)).rowcount

    # --- reading -------------------------------------------------------------------

    def recipients(self, alert_id: str, channel_id: str, states: tuple[str, ...]) -> Iterator[tuple[str, str]]:
        """``(phone, language)`` of an alert's SMS deliveries in ``states``, streamed page by page."""
        after = 0
        while True:
            rows = self.db.execute(
                f"SELECT id, recipient, language FROM deliveries WHERE alert_id = ? AND channel_id = ?"
                f" AND recipient IS NOT NULL AND state IN ({marks(states)}) AND id > ? ORDER BY id LIMIT ?",
                (alert_id, channel_id, *states, after, PAGE),
            ).fetchall()
            for _, phone, language in rows:
                yield phone, language
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def next_due(self, channel_id: str, alert_ids: tuple[str, ...] | None,
                 modes: tuple[str, ...] | None = None) -> float | None:
        scope, params = scope_sql(alert_ids, modes)
        row = self.db.execute(
            f"SELECT MIN(next_attempt_at) FROM deliveries WHERE channel_id = ? AND state IN ('pending', 'unknown')"
            f" AND next_attempt_at IS NOT NULL {scope}",
            (channel_id, *params),
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def alert(self, alert_id: str) -> AlertRecord:
        row = self.db.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        if row is None:
            raise InputError(f"no alert with id {alert_id!r}", where=self.where)
        return alert_record(row)

    def alerts(self, limit: int = 50) -> list[AlertRecord]:
        rows = self.db.execute("SELECT * FROM alerts ORDER BY sent_at DESC LIMIT ?", (limit,)).fetchall()
        return [alert_record(r) for r in rows]

    def deliveries(self, alert_id: str) -> list[DeliveryRow]:
        rows = self.db.execute(
            f"{_DELIVERY_ROW} WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        ).fetchall()
        return [DeliveryRow(*r) for r in rows]

    def attempts(self, alert_id: str) -> Iterator[AttemptRow]:
        after = 0
        while True:
            rows = self.db.execute(
                """SELECT a.id, d.alert_id, d.channel_id, d.recipient, d.language, a.attempt, a.outcome,
                          a.http_status, a.error_code, a.provider_id, a.started_at, a.finished_at, a.latency_ms,
                          a.detail
                   FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                   WHERE d.alert_id = ? AND a.id > ? ORDER BY a.id LIMIT ?""",
                (alert_id, after, PAGE),
            ).fetchall()
            for row in rows:
                yield AttemptRow(*row[1:])
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def state_counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for channel_id, state, n in self.db.execute(
            "SELECT channel_id, state, COUNT(*) FROM deliveries WHERE alert_id = ? GROUP BY channel_id, state",
            (alert_id,),
        ):
            counts.setdefault(channel_id, {})[state] = int(n)
        return counts

    def unfinished_alerts(self) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT alert_id FROM deliveries WHERE state IN ('pending', 'sending', 'unknown')"
            )
        ]

    def provider_ids(self, alert_id: str) -> dict[tuple[str, str | None, str], str]:
        """``(channel, recipient, language) -> provider id`` of sent deliveries (for threading)."""
        return {
            (c, r, lang): p
            for c, r, lang, p in self.db.execute(
                "SELECT channel_id, recipient, language, provider_id FROM deliveries"
                " WHERE alert_id = ? AND state = 'sent' AND provider_id IS NOT NULL",
                (alert_id,),
            )
        }

    # --- nodes: the processes sharing this database ----------------------------------

    def register_node(self, node_id: str, role: str, now: float) -> None:
        host, _, rest = node_id.partition(":")
        pid = rest.partition(":")[0]
        self.db.execute(
            "INSERT INTO nodes (id, host, pid, role, started_at, heartbeat_at) VALUES (?,?,?,?,?,?)",
            (node_id, host, int(pid) if pid.isdigit() else 0, role, now, now),
        )

    def heartbeat(self, node_id: str, now: float, lease_s: float) -> int:
        """The node is alive: stamp it and renew its leases; returns how many leases were renewed."""
        self.db.execute("UPDATE nodes SET heartbeat_at = ? WHERE id = ?", (now, node_id))
        return self.db.execute(
            "UPDATE deliveries SET lease_until = ? WHERE lease_owner = ? AND state = 'sending'",
            (now + lease_s, node_id),
        ).rowcount

    def stop_node(self, node_id: str, now: float) -> None:
        self.db.execute("UPDATE nodes SET stopped_at = ?, heartbeat_at = ? WHERE id = ?", (now, now, node_id))

    def nodes(self, since: float) -> list[NodeRow]:
        """Nodes that beat since ``since``, or that still hold leases, with the leases each holds."""
        rows = self.db.execute(
            """SELECT n.id, n.host, n.pid, n.role, n.started_at, n.heartbeat_at, n.stopped_at,
                      (SELECT COUNT(*) FROM deliveries d WHERE d.lease_owner = n.id AND d.state = 'sending'),
                      (SELECT MIN(d.lease_until) FROM deliveries d WHERE d.lease_owner = n.id AND d.state = 'sending')
               FROM nodes n WHERE n.heartbeat_at >= ?
                  OR EXISTS (SELECT 1 FROM deliveries d WHERE d.lease_owner = n.id AND d.state = 'sending')
               ORDER BY n.started_at""",
            (since,),
        ).fetchall()
        return [NodeRow(id=r[0], host=r[1], pid=r[2], role=r[3], started_at=r[4], heartbeat_at=r[5], stopped_at=r[6],
                        leases=int(r[7]), lease_until=r[8]) for r in rows]

    def stale_nodes(self, before: float) -> set[str]:
        """Nodes whose last heartbeat is older than ``before`` and that never said they stopped."""
        return {r[0] for r in self.db.execute(
            "SELECT id FROM nodes WHERE heartbeat_at < ? AND stopped_at IS NULL", (before,))}

    def queue_depths(self) -> dict[str, dict[str, int]]:
        """``channel -> {state: count}`` of deliveries not yet finished, over every alert."""
        depths: dict[str, dict[str, int]] = {}
        for channel_id, state, n in self.db.execute(
            "SELECT channel_id, state, COUNT(*) FROM deliveries WHERE state IN ('pending', 'sending', 'unknown')"
            " GROUP BY channel_id, state"
        ):
            depths.setdefault(channel_id, {})[state] = int(n)
        return depths

    # --- runbook runs (see broadcaster.runbooks) ---------------------------------------

    def create_run(self, run: RunRecord) -> None:
        self.db.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (run.id, run.kind, run.runbook, run.source, dumps(run.spec), run.config, run.mode, dumps(run.inputs),
             run.state, run.started_at, run.finished_at, run.detail),
        )

    def find_run(self, run_id: str) -> RunRecord | None:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def run(self, run_id: str) -> RunRecord:
        run = self.find_run(run_id)
        if run is None:
            raise InputError(f"no runbook run or schedule with id {run_id!r}", where=self.where)
        return run

    def runs(self, states: tuple[str, ...] | None = None, limit: int = 100) -> list[RunRecord]:
        where = f"WHERE state IN ({marks(states)})" if states else ""
        rows = self.db.execute(f"SELECT * FROM runs {where} ORDER BY started_at DESC LIMIT ?",
                               (*(states or ()), limit)).fetchall()
        return [_run(r) for r in rows]

    def end_run(self, run_id: str, state: str, now: float, detail: str | None = None) -> bool:
        """A running run becomes finished or stopped; False if it was not running."""
        return self.db.execute(
            "UPDATE runs SET state = ?, finished_at = ?, detail = COALESCE(?, detail)"
            " WHERE id = ? AND state = 'running'",
            (state, now, detail, run_id),
        ).rowcount == 1

    def run_steps(self, run_id: str) -> list[RunStepRow]:
        rows = self.db.execute(
            "SELECT run_id, step_id, occurrence, state, due_at, confirmed_at, fired_at, alert_id, owner, detail"
            " FROM run_steps WHERE run_id = ? ORDER BY COALESCE(due_at, confirmed_at), id",
            (run_id,),
        ).fetchall()
        return [RunStepRow(*r) for r in rows]

    def put_run_step(self, run_id: str, step_id: str, occurrence: int, state: str, due_at: float | None,
                     *, confirmed_at: float | None = None, detail: str | None = None) -> bool:
        """Add a step occurrence's row; False if it already exists (the UNIQUE key keeps one)."""
        return self.db.execute(
            "INSERT INTO run_steps (run_id, step_id, occurrence, state, due_at, confirmed_at, detail)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (run_id, step_id, occurrence, state, due_at, confirmed_at, detail),
        ).rowcount == 1

    def move_run_step(self, run_id: str, step_id: str, occurrence: int, *, from_states: tuple[str, ...],
                      to_state: str, **fields: float | str | None) -> bool:
        """Compare-and-set: move the row to ``to_state`` only if it is in ``from_states``.

        One UPDATE statement, so two jobs racing for the same row cannot both win:
        this is how a job claims its step (``scheduled -> firing``) before firing.
        ``fields`` may set due_at, confirmed_at, fired_at, alert_id, owner, detail.
        """
        allowed = {"due_at", "confirmed_at", "fired_at", "alert_id", "owner", "detail"}
        if set(fields) - allowed:
            raise ValueError(f"unknown run_steps field(s): {set(fields) - allowed}")
        sets = "".join(f", {name} = ?" for name in fields)
        return self.db.execute(
            f"UPDATE run_steps SET state = ?{sets} WHERE run_id = ? AND step_id = ? AND occurrence = ?"
            f" AND state IN ({marks(from_states)})",
            (to_state, *fields.values(), run_id, step_id, occurrence, *from_states),
        ).rowcount == 1


def scope_sql(alert_ids: tuple[str, ...] | None, modes: tuple[str, ...] | None = None) -> tuple[str, tuple[str, ...]]:
    """``AND …`` restricting deliveries to some alerts and/or to alerts of some modes."""
    sql, params = "", tuple[str, ...]()
    if alert_ids is not None:
        sql += f" AND alert_id IN ({marks(alert_ids) or 'NULL'})"
        params += alert_ids
    if modes is not None:
        sql += f" AND alert_id IN (SELECT id FROM alerts WHERE mode IN ({marks(modes) or 'NULL'}))"
        params += modes
    return sql, params


def dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def alert_record(row: tuple[Any, ...]) -> AlertRecord:
    return AlertRecord(
        id=row[0], template=row[1], template_hash=row[2], mode=row[3], msg_type=row[4], references=row[5],
        sent_at=row[6], expires_at=row[7], areas=tuple(orjson.loads(row[8])), channels=tuple(orjson.loads(row[9])),
        inputs=orjson.loads(row[10]), forms=orjson.loads(row[11]), created_by=row[12],
    )


def _run(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        id=row[0], kind=row[1], runbook=row[2], source=row[3], spec=orjson.loads(row[4]), config=row[5], mode=row[6],
        inputs=orjson.loads(row[7]), state=row[8], started_at=row[9], finished_at=row[10], detail=row[11],
    )


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` ("host:pid:token") names a process on this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != os.uname().nodename or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
