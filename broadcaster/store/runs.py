"""Runbook runs, rehearsals and scheduled fires (``runs``), and what each of their steps did (``run_steps``).

The ``run_steps`` rows are the schedule itself: a step occurrence is
``scheduled`` with its ``due_at`` until a job claims it (``scheduled -> firing``,
one compare-and-set statement), so a job that runs twice, or on two hosts,
fires once. The scheduler leader keeps its timers in memory and rebuilds them
from these rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from broadcaster.errors import InputError
from broadcaster.states import Mode, RunKind, RunState, StepState
from broadcaster.store.records import RunRecord, RunStepRow
from broadcaster.store.sql import Database, marks

RUN_COLUMNS: Final = ("id, kind, runbook, source, spec, config, mode, inputs, state, started_at, finished_at,"
                      " detail, started_by")
STEP_COLUMNS: Final = "run_id, step_id, occurrence, state, due_at, confirmed_at, fired_at, alert_id, owner, detail"
STEP_FIELDS: Final = frozenset({"due_at", "confirmed_at", "fired_at", "alert_id", "owner", "detail"})


def _run(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"], kind=RunKind(row["kind"]), runbook=row["runbook"], source=row["source"],
        spec=orjson.loads(row["spec"]), config=row["config"], mode=Mode(row["mode"]),
        inputs=orjson.loads(row["inputs"]), state=RunState(row["state"]), started_at=row["started_at"],
        finished_at=row["finished_at"], detail=row["detail"], started_by=row["started_by"],
    )


def _step(row: Any) -> RunStepRow:
    return RunStepRow(
        run_id=row["run_id"], step_id=row["step_id"], occurrence=row["occurrence"], state=StepState(row["state"]),
        due_at=row["due_at"], confirmed_at=row["confirmed_at"], fired_at=row["fired_at"], alert_id=row["alert_id"],
        owner=row["owner"], detail=row["detail"],
    )


class SqlRuns:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, run: RunRecord) -> None:
        await self.db.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run.id, str(run.kind), run.runbook, run.source, orjson.dumps(run.spec).decode(), run.config,
             str(run.mode), orjson.dumps(run.inputs).decode(), str(run.state), run.started_at, run.finished_at,
             run.detail, run.started_by),
        )

    async def find(self, run_id: str) -> RunRecord | None:
        row = (await self.db.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))).one()
        return _run(row) if row is not None else None

    async def get(self, run_id: str) -> RunRecord:
        run = await self.find(run_id)
        if run is None:
            raise InputError(f"no runbook run or schedule with id {run_id!r}", where=self.db.where)
        return run

    async def recent(self, states: Sequence[RunState] | None = None, limit: int = 100) -> list[RunRecord]:
        where = f"WHERE state IN ({marks(states)})" if states else ""
        rows = await self.db.execute(f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY started_at DESC LIMIT ?",
                                     (*(states or ()), limit))
        return [_run(r) for r in rows]

    async def end(self, run_id: str, state: RunState, now: float, detail: str | None = None) -> bool:
        """A running run becomes finished or stopped; False if it was not running."""
        return (await self.db.execute(
            "UPDATE runs SET state = ?, finished_at = ?, detail = COALESCE(?, detail) WHERE id = ? AND state = ?",
            (state, now, detail, run_id, RunState.RUNNING),
        )).rowcount == 1

    async def steps(self, run_id: str) -> list[RunStepRow]:
        rows = await self.db.execute(
            f"SELECT {STEP_COLUMNS} FROM run_steps WHERE run_id = ? ORDER BY COALESCE(due_at, confirmed_at), id",
            (run_id,),
        )
        return [_step(r) for r in rows]

    async def held(self, alert_id: str | None = None) -> list[RunStepRow]:
        """Step occurrences whose live two-person alert waits for a second officer (of one alert, or all)."""
        where, params = ("s.state = ?", (StepState.HELD,)) if alert_id is None else (
            "s.state = ? AND s.alert_id = ?", (StepState.HELD, alert_id))
        rows = await self.db.execute(
            f"SELECT {', '.join('s.' + c for c in STEP_COLUMNS.split(', '))} FROM run_steps s WHERE {where}"
            " ORDER BY s.id", params)
        return [_step(r) for r in rows]

    async def scheduled(self) -> list[RunStepRow]:
        """Every step occurrence a job must fire, over every running run (rehearsals play their own), soonest first."""
        rows = await self.db.execute(
            f"SELECT {', '.join('s.' + c for c in STEP_COLUMNS.split(', '))} FROM run_steps s"
            " JOIN runs r ON r.id = s.run_id WHERE s.state = ? AND r.state = ? AND r.kind != ?"
            " AND s.due_at IS NOT NULL ORDER BY s.due_at, s.id",
            (StepState.SCHEDULED, RunState.RUNNING, RunKind.REHEARSAL),
        )
        return [_step(r) for r in rows]

    async def put_step(self, run_id: str, step_id: str, occurrence: int, state: StepState, due_at: float | None,
                       *, confirmed_at: float | None = None, detail: str | None = None) -> bool:
        """Add a step occurrence's row; False if it already exists (the UNIQUE key keeps one)."""
        return (await self.db.execute(
            "INSERT INTO run_steps (run_id, step_id, occurrence, state, due_at, confirmed_at, detail)"
            " VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (run_id, step_id, occurrence, state, due_at, confirmed_at, detail),
        )).rowcount == 1

    async def move_step(self, run_id: str, step_id: str, occurrence: int, *, from_states: Sequence[StepState],
                        to_state: StepState, owner_is: str | None = None, uncommitted: bool = False,
                        **fields: float | str | None) -> bool:
        """Compare-and-set: move the row to ``to_state`` only if it is in ``from_states`` (and, with
        ``owner_is``, still owned by that job).

        One UPDATE statement, so two jobs racing for the same row cannot both win:
        this is how a job claims its step (``scheduled -> firing``) before firing,
        and how a leader's late write is fenced off once another leader re-armed
        the step. ``uncommitted`` also requires that no alert was committed for
        it (the outbox commit writes ``alert_id`` in its own transaction).
        ``fields`` may set due_at, confirmed_at, fired_at, alert_id, owner, detail.
        """
        if set(fields) - STEP_FIELDS:
            raise ValueError(f"unknown run_steps field(s): {sorted(set(fields) - STEP_FIELDS)}")
        sets = "".join(f", {name} = ?" for name in fields)
        owner_sql, owner_params = (" AND owner = ?", (owner_is,)) if owner_is is not None else ("", ())
        if uncommitted:
            owner_sql += " AND alert_id IS NULL"
        return (await self.db.execute(
            f"UPDATE run_steps SET state = ?{sets} WHERE run_id = ? AND step_id = ? AND occurrence = ?"
            f" AND state IN ({marks(from_states)}){owner_sql}",
            (to_state, *fields.values(), run_id, step_id, occurrence, *from_states, *owner_params),
        )).rowcount == 1
