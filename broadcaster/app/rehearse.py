"""Rehearse a runbook, and check one before a real run: the real pipeline, dry-run, on one virtual clock.

A rehearsal is one coroutine on one :class:`~broadcaster.clock.VirtualTimeLoop`.
Each step is claimed, planned, launched and committed exactly as a run's would
be (:func:`broadcaster.app.runbook.fire_occurrence`) and delivered by the real
dispatcher through the channels' recording transports, with rate limits and the
delivery log. Waiting for the next step is ``await clock.sleep(...)``, which the
virtual loop skips in no time, so a 12-hour runbook plays out in well under a
second. Steps that wait for an operator are confirmed automatically and flagged.

The run, its steps and their alerts are stored under the rehearsal's own run id,
so ``broadcaster log RUN_ID`` reads a rehearsal like a real run. :func:`preflight`
rehearses a run in its real mode against a scratch database before anything of
it is scheduled.

Both functions run a loop of their own: call them on a worker thread from an
event loop (the CLI and the service both do).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from broadcaster.app.context import App
from broadcaster.app.runbook import fire_occurrence
from broadcaster.clock import Clock, run_virtual
from broadcaster.config import Config
from broadcaster.errors import ConfigError
from broadcaster.netguard import no_network
from broadcaster.runbooks.check import check_runbook, require_clean
from broadcaster.runbooks.ids import new_run_id
from broadcaster.runbooks.inputs import Inputs, time_of
from broadcaster.runbooks.model import Runbook
from broadcaster.runbooks.refs import RunbookError
from broadcaster.runbooks.steps import Fired, advance_run
from broadcaster.runbooks.timeline import MAX_OCCURRENCES
from broadcaster.states import Mode, RunKind, RunState, StepState
from broadcaster.store import address_of, opened
from broadcaster.store.records import RunRecord
from broadcaster.templates.catalogue import Catalogue
from broadcaster.timefmt import iso_seconds

OWNER = "rehearsal"


@dataclass
class Entry:
    """One occurrence on the timeline."""

    fired: Fired
    auto_confirmed: bool = False


@dataclass
class Rehearsal:
    run: RunRecord
    runbook: Runbook
    start: float
    end: float
    entries: list[Entry] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def span_s(self) -> float:
        return self.end - self.start


async def play(app: App, runbook: Runbook, run: RunRecord, *, plan_mode: Mode, clock: Clock) -> Rehearsal:
    """Play every step of ``run`` on ``clock`` (virtual), firing each through the engine in dry-run."""
    runs = app.store.runs
    result = Rehearsal(run=run, runbook=runbook, start=clock.now(), end=clock.now())
    order = {s.id: s.index for s in runbook.steps}
    while True:
        await advance_run(runs, runbook, run, app.config.timezone, auto_confirm=True)
        scheduled = [r for r in await runs.steps(run.id) if r.state == StepState.SCHEDULED]
        if not scheduled:
            break
        row = min(scheduled, key=lambda r: (r.due_at or 0.0, order[r.step_id], r.occurrence))
        step = runbook.step(row.step_id)
        assert step is not None and row.due_at is not None
        await clock.sleep(row.due_at - clock.now())
        fired = await fire_occurrence(app, runbook, run, step, row.occurrence, owner=OWNER, plan_mode=plan_mode,
                                      deliver_mode=Mode.DRY_RUN, clock=clock)
        result.entries.append(Entry(fired, auto_confirmed=step.confirm and row.occurrence == 0))
        if fired.state == "failed":
            result.warnings.append(f"{step.where}: failed: {fired.detail}")
    result.end = clock.now()
    for step in runbook.steps:
        count = sum(1 for e in result.entries if e.fired.step.id == step.id)
        if step.every is not None and count >= MAX_OCCURRENCES:
            result.warnings.append(f"{step.where}: repeated {count} times and stopped there, before its until")
    await runs.end(run.id, RunState.FINISHED, result.end)
    return result


def rehearse(config: Config, catalogue: Catalogue, database: str, runbook: Runbook, inputs: Inputs, *,
             start: float | None = None, plan_mode: Mode = Mode.DRY_RUN, guard_network: bool = True) -> Rehearsal:
    """Check, then play the whole runbook on a virtual clock of its own, with no network but the database.

    ``guard_network=False`` leaves out the process-wide :func:`no_network` patch
    (the deliveries still go to recording transports only): the server
    rehearses on a worker thread and must not block the live sends of its own
    loop meanwhile.
    """
    began = time.perf_counter()
    start = time.time() if start is None else start
    problems = check_runbook(runbook, config, catalogue, inputs=inputs, start=start)
    require_clean(problems)
    run = RunRecord(id=new_run_id(RunKind.REHEARSAL, start), kind=RunKind.REHEARSAL, runbook=runbook.id,
                    source=runbook.source, spec=dict(runbook.raw), config=str(config.path), mode=plan_mode,
                    inputs=inputs, state=RunState.RUNNING, started_at=start)

    async def main() -> Rehearsal:
        async with opened(database) as store:
            app = App(config=config, catalogue=catalogue, store=store, database=database)
            await store.runs.create(run)
            return await play(app, runbook, run, plan_mode=plan_mode, clock=Clock(wall_start=start))

    if guard_network:
        reachable = address_of(database)
        with no_network(allow=[reachable] if reachable else []):
            result = run_virtual(main())
    else:
        result = run_virtual(main())
    result.warnings[:0] = [str(p) for p in problems if p.level == "warning"]
    result.wall_s = time.perf_counter() - began
    return result


def preflight(config: Config, catalogue: Catalogue, runbook: Runbook, inputs: Inputs, mode: Mode, start: float, *,
              guard_network: bool = True) -> Rehearsal:
    """Before anything fires: the whole runbook rehearsed in ``mode`` against a scratch database."""
    require_clean(check_runbook(runbook, config, catalogue, inputs=inputs, start=start))
    for step in runbook.steps:
        if step.at is not None and time_of(step.at, inputs, tz=config.timezone, where=step.where) < start - 60:
            raise RunbookError("its time is before the run starts; it would only be reported missed",
                               where=step.where)
    result = rehearse(config, catalogue, ":memory:", runbook, inputs, start=start, plan_mode=mode,
                      guard_network=guard_network)
    if mode != Mode.DRY_RUN:
        # Every step goes out later, from the scheduler: refuse now rather than fail step by step.
        missing = sorted({f"{c.id}.{key} -> ${env}" for e in result.entries if e.fired.plan
                          for c in e.fired.plan.channels for key, env in c.missing_env()})
        if missing:
            raise ConfigError(f"a {mode} run needs these environment variables, which are not set: "
                              f"{', '.join(missing)}", where=str(config.path))
    failed = [e for e in result.entries if e.fired.state == "failed"]
    if failed:
        first = failed[0].fired
        raise RunbookError(f"rehearsal before the run failed: {first.detail}", where=first.step.where)
    return result


def rehearsal_json(config: Config, result: Rehearsal) -> dict[str, Any]:
    """A rehearsal's timeline, as ``runbook rehearse --json`` and ``POST /api/runbooks/{id}/rehearse`` show it."""
    tz = config.timezone
    return {
        "run_id": result.run.id,
        "runbook": result.runbook.id,
        "mode": str(result.run.mode),
        "start": iso_seconds(result.start, tz),
        "end": iso_seconds(result.end, tz),
        "span_s": round(result.span_s, 3),
        "wall_s": round(result.wall_s, 3),
        "inputs": result.run.inputs,
        "steps": [
            {
                "step": e.fired.step.id,
                "occurrence": e.fired.occurrence,
                "time": iso_seconds(e.fired.time, tz),
                "offset_s": round(e.fired.time - result.start, 3),
                "action": e.fired.step.label,
                "msg_type": str(e.fired.plan.alert.msg_type) if e.fired.plan else None,
                "state": e.fired.state,
                "alert_id": e.fired.alert_id,
                "confirm": "auto-confirmed" if e.auto_confirmed else None,
                "channels": list(e.fired.plan.alert.channels) if e.fired.plan else [],
                "messages": [row.as_json() for row in e.fired.plan.rows] if e.fired.plan else [],
                "deliveries": e.fired.states,
                "detail": e.fired.detail,
                "warnings": e.fired.warnings,
            }
            for e in result.entries
        ],
        "warnings": result.warnings + [f"{e.fired.step.id} #{e.fired.occurrence}: {w}" for e in result.entries
                                       for w in e.fired.warnings],
    }
