"""Runbook steps through the application layer: every step's alert obeys the rules of every fire.

:func:`fire_occurrence` claims the step's row (``scheduled -> firing``), plans
the alert with the same :func:`~broadcaster.app.fire.plan_request`, lets
:func:`~broadcaster.app.fire.launch` decide (a live two-person step is held for
a second officer; a cancel withdraws first), and commits under the step's claim
(:class:`~broadcaster.store.records.StepClaim`), so a host that lost the step to
another commits nothing. :class:`AppFirer` is how the scheduler host
(:mod:`broadcaster.runbooks.scheduler`) reaches it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from broadcaster.app.context import App, load
from broadcaster.app.fire import Going, Held, Request, launch, plan_request, run_plan, step_confirmed
from broadcaster.app.resume import recover_dead
from broadcaster.clock import Clock
from broadcaster.engine.outbox import Plan
from broadcaster.engine.runner import deliver
from broadcaster.errors import BroadcasterError, Conflict, InputError, StoreError
from broadcaster.runbooks.inputs import step_areas, step_vars
from broadcaster.runbooks.model import Runbook, Step, parse_runbook
from broadcaster.runbooks.refs import RunbookError
from broadcaster.runbooks.scheduler import Host
from broadcaster.runbooks.steps import Fired, plan_warnings
from broadcaster.runbooks.timeline import original_alert, rows_by_key, skip_reason
from broadcaster.states import Mode, RunState, StepState
from broadcaster.store.pending import AWAITING, CONFIRMED
from broadcaster.store.records import RunRecord, StepClaim
from broadcaster.timefmt import iso_seconds

log = logging.getLogger("broadcaster.runbooks")


async def plan_occurrence(app: App, run: RunRecord, step: Step, occurrence: int, *, mode: Mode,
                          now: float) -> tuple[Request, Plan]:
    """The alert this occurrence sends: a new alert, or an update or cancel of an earlier one."""
    tz = app.config.timezone
    values = step_vars(step, run.inputs, now=now, tz=tz)
    if step.action == "template" and occurrence == 0:
        request = Request("fire", mode, template=step.target, inputs=values,
                          areas=step_areas(step, run.inputs, now=now, tz=tz), selection=step.channels)
    else:
        original = original_alert(step, rows_by_key(await app.store.runs.steps(run.id)))
        if original is None:
            raise InputError(f"no alert to follow up for occurrence {occurrence}", where=step.where)
        request = (Request("cancel", mode, original=original) if step.action == "cancel"
                   else Request("update", mode, original=original, overrides=values,
                                reminder=reminder_number(step, occurrence)))
    return request, await plan_request(app, request, now=now, created_by=f"runbook:{run.id}")


def reminder_number(step: Step, occurrence: int) -> int | None:
    """Which reminder this occurrence of a repeating step is (counted from 1), or None for an update.

    A repeating (``every``) step's sends after its first say the same again: reminders. Its first send is the
    alert (a template step) or an update when it changes something (an update step with ``vars``, as a flood
    watch raised to a warning); an update step that changes nothing (the earthquake's hourly safety advice)
    is a reminder from its first send.
    """
    if step.every is None or step.action == "cancel":
        return None
    first_reminds = step.action == "update" and not step.vars
    number = occurrence + 1 if first_reminds else occurrence
    return number or None


async def fire_occurrence(app: App, runbook: Runbook, run: RunRecord, step: Step, occurrence: int, *,
                          owner: str, plan_mode: Mode, deliver_mode: Mode, clock: Clock) -> Fired:
    """Claim, plan, launch and deliver one occurrence; never raises for a bad step (the row records why).

    A store error raises, leaving the step claimed: the scheduler host
    (:meth:`~broadcaster.runbooks.scheduler.Host.recover`) re-arms it, or finishes
    the deliveries of its committed alert, when the database answers again.

    A rehearsal (``deliver_mode`` dry-run) shows a two-person step as it would
    go once confirmed, and says so in its warnings.
    """
    runs = app.store.runs
    now = clock.now()
    key = (run.id, step.id, occurrence)
    if not await runs.move_step(*key, from_states=(StepState.SCHEDULED,), to_state=StepState.FIRING, owner=owner,
                                fired_at=now):
        return Fired(step, occurrence, "taken", now, detail="already claimed or handled")

    async def finish(state: StepState, detail: str, **fields: Any) -> bool:
        return await runs.move_step(*key, from_states=(StepState.FIRING,), to_state=state, owner_is=owner,
                                    detail=detail, **fields)

    current = await runs.get(run.id)
    rows = rows_by_key(await runs.steps(run.id))
    due = rows[(step.id, occurrence)].due_at or now
    reason = "the run was stopped" if current.state != RunState.RUNNING else skip_reason(
        runbook, step, occurrence, due, run.inputs, rows, app.config.timezone)
    if reason is not None:
        await finish(StepState.SKIPPED, reason)
        return Fired(step, occurrence, "skipped", now, detail=reason)
    try:
        request, plan = await plan_occurrence(app, run, step, occurrence, mode=plan_mode, now=now)
    except InputError as exc:
        await finish(StepState.FAILED, f"not fired: {exc}")
        return Fired(step, occurrence, "failed", now, detail=str(exc))
    warnings = plan_warnings(app.config, app.catalogue.gazetteer, step, plan)
    plan.step = StepClaim(run.id, step.id, occurrence, owner)
    if deliver_mode == Mode.DRY_RUN:
        if plan.alert.mode == Mode.LIVE and plan.template.two_person:
            warnings.append("a live two-person alert: it waits for a second officer before it goes out")
        decision: Held | Going = Going(plan)
    else:
        # The officer who started the run asked for this alert: a held one needs a different officer.
        decision = await launch(app, plan, request, actor=run.started_by or f"runbook:{run.id}", now=now)
    if isinstance(decision, Held):
        until = iso_seconds(decision.confirm_by, app.config.timezone)
        detail = (f"held for a second officer until {until}: nothing is sent, and the run waits, until one "
                  f"confirms alert {decision.alert_id}")
        await finish(StepState.HELD, detail, alert_id=decision.alert_id)
        return Fired(step, occurrence, "held", now, None, detail, warnings)
    try:
        await run_plan(app, plan, clock=clock, mode=deliver_mode)
    except Conflict as exc:  # another host took the step over while this one was away: it is theirs
        return Fired(step, occurrence, "taken", now, detail=str(exc))
    except Exception as exc:  # a missing secret (nothing committed), or a failure mid-delivery
        if isinstance(exc, StoreError) and exc.retryable:
            # The database is away, or was for a moment: no reason to drop the step. It stays claimed
            # ("firing"), and its host re-arms it (or finishes its deliveries, if the alert was committed)
            # once the database is back.
            raise
        committed = await app.store.alerts.find(plan.alert.id) is not None
        if not isinstance(exc, BroadcasterError):
            log.exception("step %s #%d of run %s failed", step.id, occurrence, run.id)
        state = StepState.FIRED if committed else StepState.FAILED
        note = "delivery stopped; `broadcaster resume` finishes it" if committed else "not fired"
        await finish(state, f"{note}: {exc}")
        return Fired(step, occurrence, str(state), now, plan if committed else None, str(exc), warnings)
    states = Counter(str(d.state) for d in await app.store.alerts.deliveries(plan.alert.id))
    detail = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    await finish(StepState.FIRED, detail)
    return Fired(step, occurrence, "fired", now, plan, detail, warnings, dict(states))


class AppFirer:
    """The scheduler host's way to fire: each run with its own channels.toml, over this process's store."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._runbooks: dict[str, Runbook] = {}
        self._apps: dict[str, App] = {}

    def runbook(self, run: RunRecord) -> Runbook:
        if run.id not in self._runbooks:
            self._runbooks[run.id] = parse_runbook(run.spec, runbook_id=run.runbook, source=run.source or run.id)
        return self._runbooks[run.id]

    def app_for(self, run: RunRecord) -> App:
        """The run's own channels.toml (it may not be this host's), over this host's database."""
        if run.config is None or Path(run.config).resolve() == Path(self.app.config.path).resolve():
            return self.app
        if run.config not in self._apps:
            config, catalogue, _ = load(run.config, self.app.database)
            self._apps[run.config] = App(config=config, catalogue=catalogue, store=self.app.store,
                                         database=self.app.database)
        return self._apps[run.config]

    async def fire(self, run: RunRecord, step: Step, occurrence: int, *, owner: str) -> Fired:
        return await fire_occurrence(self.app_for(run), self.runbook(run), run, step, occurrence, owner=owner,
                                     plan_mode=run.mode, deliver_mode=run.mode, clock=Clock())

    async def settle(self, now: float) -> list[str]:
        return await settle_held(self.app, now)

    async def finish(self, run: RunRecord, alert_id: str) -> None:
        app = self.app_for(run)
        await recover_dead(app)
        by_id = {c.id: c for c in app.config.channels}
        alert = await app.store.alerts.get(alert_id)
        await deliver(app.store, [by_id[c] for c in alert.channels if c in by_id], run.mode, alert_ids=(alert_id,),
                      status_callback=app.status_callback)


def host(app: App, report: Any = None, **options: Any) -> Host:
    """A scheduler host for this process: it leads, or follows, the schedule kept in the database."""
    return Host(app.store, AppFirer(app), tz=app.config.timezone, report=report, **options)


async def stop_run(app: App, run_id: str, reason: str) -> RunRecord:
    """Mark the run stopped and skip what it still had to do; the leader drops its timers at its next poll."""
    runs = app.store.runs
    run = await runs.get(run_id)
    if run.state != RunState.RUNNING:
        raise RunbookError(f"run {run_id} is already {run.state}", where=run.source or run_id)
    await runs.end(run_id, RunState.STOPPED, time.time(), detail=reason)
    for row in await runs.steps(run_id):
        if row.state == StepState.HELD and row.alert_id is not None:
            # Its alert must not go out after the run is stopped: nobody may confirm it any more.
            if not await app.store.pending.withdraw(row.alert_id):
                continue  # confirmed first: it is going out, and the step becomes fired
            await runs.move_step(run_id, row.step_id, row.occurrence, from_states=(StepState.HELD,),
                                 to_state=StepState.SKIPPED, detail=f"{reason}; its held alert was withdrawn")
            continue
        await runs.move_step(run_id, row.step_id, row.occurrence,
                             from_states=(StepState.SCHEDULED, StepState.AWAITING), to_state=StepState.SKIPPED,
                             detail=reason)
    return await runs.get(run_id)


async def settle_held(app: App, now: float) -> list[str]:
    """Held steps whose second officer never came (window closed) fail; a step whose alert was confirmed, fires.

    The confirmation itself moves its step (:func:`~broadcaster.app.fire.confirm`);
    this catches the rest each time the scheduler polls. Returns what it did.
    """
    said = []
    for row in await app.store.runs.held():
        assert row.alert_id is not None
        pending = await app.store.pending.get(row.alert_id)
        if pending is not None and pending.state_at(now) == AWAITING:
            continue
        if pending is not None and pending.state == CONFIRMED:
            await step_confirmed(app, row.alert_id, pending.confirmed_by or "a second officer",
                                 pending.confirmed_at or now)
            continue
        if pending is not None and await app.store.pending.close_expired(row.alert_id, now=now):
            await app.audit(f"runbook:{row.run_id}", "confirmation_expired",
                            {"alert_id": row.alert_id, "requested_by": pending.requested_by}, now=now)
        until = iso_seconds(pending.confirm_by, app.config.timezone) if pending is not None else "its deadline"
        if await app.store.runs.move_step(row.run_id, row.step_id, row.occurrence, from_states=(StepState.HELD,),
                                          to_state=StepState.FAILED,
                                          detail=f"not confirmed by a second officer by {until}: nothing was sent"):
            said.append(f"{row.run_id}: {row.step_id} #{row.occurrence} was not confirmed by {until}; "
                        f"alert {row.alert_id} was not sent")
    return said


async def confirm_step(app: App, run_id: str, step_id: str, *, now: float) -> None:
    """An operator confirms a step that waits for one (it may be confirmed before it is due)."""
    runs = app.store.runs
    run = await runs.get(run_id)
    if run.state != RunState.RUNNING:
        raise RunbookError(f"run {run.id} is {run.state}", where=run.id)
    step = parse_runbook(run.spec, runbook_id=run.runbook, source=run.source or run.id).step(step_id)
    if step is None or not step.confirm:
        raise RunbookError(f"run {run.id} has no step {step_id!r} that waits for confirmation", where=run.id)
    row = next((r for r in await runs.steps(run.id) if r.step_id == step.id and r.occurrence == 0), None)
    if row is not None and (row.state != StepState.AWAITING or row.confirmed_at is not None):
        state = row.state if row.state != StepState.AWAITING else "confirmed"
        raise RunbookError(f"step {step.id!r} is already {state}", where=run.id)
    if row is None:
        await runs.put_step(run.id, step.id, 0, StepState.AWAITING, None, confirmed_at=now,
                            detail="confirmed in advance")
    elif not await runs.move_step(run.id, step.id, 0, from_states=(StepState.AWAITING,),
                                  to_state=StepState.AWAITING, confirmed_at=now):
        raise RunbookError(f"step {step.id!r} could not be confirmed; see `broadcaster runbook status {run.id}`",
                           where=run.id)


async def run_json(app: App, run: RunRecord) -> dict[str, Any]:
    """A run and its steps, as ``runbook status --json`` and ``GET /api/runbooks/runs/{id}`` show it."""
    tz = app.config.timezone

    def when(ts: float | None) -> str | None:
        return iso_seconds(ts, tz) if ts is not None else None

    return {
        "run_id": run.id, "kind": str(run.kind), "runbook": run.runbook, "mode": str(run.mode),
        "state": str(run.state), "started_at": when(run.started_at), "finished_at": when(run.finished_at),
        "inputs": run.inputs,
        "steps": [
            {"step": r.step_id, "occurrence": r.occurrence, "state": str(r.state), "due_at": when(r.due_at),
             "confirmed_at": when(r.confirmed_at), "fired_at": when(r.fired_at), "alert_id": r.alert_id,
             "detail": r.detail}
            for r in await app.store.runs.steps(run.id)
        ],
    }
