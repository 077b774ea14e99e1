"""Fire one step occurrence through the real engine, exactly once.

Rehearsals and scheduled jobs both come here. The occurrence's ``run_steps`` row
is claimed first (``scheduled -> firing``, one compare-and-set statement), so a
job that runs twice, or on two hosts, fires once. Then the alert is planned with
the real ``plan_alert`` / ``plan_update`` / ``plan_cancel``, its id written to the
row *before* the outbox commit, and delivered by the real dispatcher.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from broadcaster.app import App
from broadcaster.clock import Clock
from broadcaster.engine.lifecycle import plan_cancel, plan_update, withdraw_original
from broadcaster.engine.outbox import Plan, plan_alert
from broadcaster.engine.runner import deliver
from broadcaster.errors import BroadcasterError, InputError
from broadcaster.runbooks.inputs import step_areas, step_vars
from broadcaster.runbooks.model import Runbook, Step
from broadcaster.runbooks.records import RunRecord
from broadcaster.runbooks.store import run_store
from broadcaster.runbooks.timeline import Due, original_alert, pending, rows_by_key, skip_reason
from broadcaster.selection import select_channels

log = logging.getLogger("broadcaster.runbooks")

NEAR_LIMIT: Final = 0.9  # warn when a text uses more than this share of its channel's limit


@dataclass
class Fired:
    """What one occurrence did."""

    step: Step
    occurrence: int
    state: str  # fired | failed | skipped | taken (another job had it)
    time: float
    plan: Plan | None = None
    detail: str | None = None
    warnings: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)  # delivery state -> count

    @property
    def alert_id(self) -> str | None:
        return self.plan.alert.id if self.plan is not None else None


def advance_run(app: App, runbook: Runbook, run: RunRecord, *, auto_confirm: bool = False) -> list[Due]:
    """Write the rows of what is due next; return the occurrences newly scheduled.

    Idempotent: it only adds rows that do not exist yet and moves confirmed
    ``awaiting`` rows to ``scheduled``. The caller adds one job per returned
    occurrence. ``auto_confirm`` (rehearsals) confirms a step the moment it is due.
    """
    store = run_store(app)
    new: list[Due] = []
    for _ in range(len(runbook.steps) + 1):  # each auto-confirmation makes one more step schedulable
        confirmed = False
        for due in pending(runbook, run.inputs, run.started_at, rows_by_key(store.run_steps(run.id)),
                           app.config.timezone):
            key = (run.id, due.step.id, due.occurrence)
            if due.awaiting:
                store.put_run_step(*key, "awaiting", due.due_at)
                if auto_confirm:
                    confirmed = store.move_run_step(*key, from_states=("awaiting",), to_state="awaiting",
                                                    confirmed_at=due.due_at)
                continue
            if store.put_run_step(*key, "scheduled", due.due_at) or store.move_run_step(
                    *key, from_states=("awaiting",), to_state="scheduled", due_at=due.due_at):
                new.append(due)
        if not confirmed:
            break
    return new


def plan_occurrence(app: App, runbook: Runbook, run: RunRecord, step: Step, occurrence: int, *, mode: str,
                    now: float) -> Plan:
    """The alert this occurrence sends: a new alert, or an update or cancel of an earlier one."""
    tz = app.config.timezone
    rows = rows_by_key(run_store(app).run_steps(run.id))
    values = step_vars(step, run.inputs, now=now, tz=tz)
    if step.action == "template" and occurrence == 0:
        return plan_alert(app.config, app.catalogue, step.target, values, mode=mode, now=now,
                          areas=step_areas(step, run.inputs, now=now, tz=tz), selection=step.channels,
                          store=app.store)
    original = original_alert(step, rows)
    if original is None:
        raise InputError(f"no alert to follow up for occurrence {occurrence}", where=step.where)
    if step.action == "cancel":
        return plan_cancel(app, original, mode=mode, now=now)
    return plan_update(app, original, values, mode=mode, now=now)


async def fire_occurrence(app: App, runbook: Runbook, run: RunRecord, step: Step, occurrence: int, *,
                          owner: str, plan_mode: str, deliver_mode: str, clock: Clock) -> Fired:
    """Claim, plan and deliver one occurrence; never raises for a bad step (the row records why)."""
    store = run_store(app)
    now = clock.now()
    key = (run.id, step.id, occurrence)
    if not store.move_run_step(*key, from_states=("scheduled",), to_state="firing", owner=owner, fired_at=now):
        return Fired(step, occurrence, "taken", now, detail="already claimed or handled")
    current = store.run(run.id)
    rows = rows_by_key(store.run_steps(run.id))
    due = rows[(step.id, occurrence)].due_at or now
    reason = "the run was stopped" if current.state != "running" else skip_reason(
        runbook, step, occurrence, due, run.inputs, rows, app.config.timezone)
    if reason is not None:
        store.move_run_step(*key, from_states=("firing",), to_state="skipped", detail=reason)
        return Fired(step, occurrence, "skipped", now, detail=reason)
    try:
        plan = plan_occurrence(app, runbook, run, step, occurrence, mode=plan_mode, now=now)
    except Exception as exc:  # an InputError, or a bug: either way the row must not stay "firing"
        if not isinstance(exc, InputError):
            log.exception("planning step %s #%d of run %s failed", step.id, occurrence, run.id)
        store.move_run_step(*key, from_states=("firing",), to_state="failed", detail=f"not fired: {exc}")
        return Fired(step, occurrence, "failed", now, detail=str(exc))
    # The alert id goes on the row before the outbox commit: after a crash, the row says which alert to resume.
    store.move_run_step(*key, from_states=("firing",), to_state="firing", alert_id=plan.alert.id)
    warnings = plan_warnings(app, step, plan)
    try:
        withdraw_original(app, plan)
        await deliver(app.store, plan.channels, deliver_mode, plan=plan, clock=clock)
    except Exception as exc:  # e.g. a missing secret (nothing committed), or a bug mid-delivery
        if not isinstance(exc, BroadcasterError):
            log.exception("delivering step %s #%d of run %s failed", step.id, occurrence, run.id)
        committed = bool(app.store.deliveries(plan.alert.id))
        state = "fired" if committed else "failed"
        note = "delivery stopped; `broadcaster resume` finishes it" if committed else "not fired"
        store.move_run_step(*key, from_states=("firing",), to_state=state, detail=f"{note}: {exc}")
        return Fired(step, occurrence, state, now, plan if committed else None, str(exc), warnings)
    states = Counter(d.state for d in app.store.deliveries(plan.alert.id))
    detail = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    store.move_run_step(*key, from_states=("firing",), to_state="fired", detail=detail)
    return Fired(step, occurrence, "fired", now, plan, detail, warnings, dict(states))


def plan_warnings(app: App, step: Step, plan: Plan) -> list[str]:
    """Texts that only just fit, areas no selected channel covers, SMS lists with nobody in the area."""
    warnings: list[str] = []
    for row in plan.rows:
        r = row.rendered
        if r.limit and r.length > NEAR_LIMIT * r.limit:
            warnings.append(f"{row.channel} ({r.language}): {r.length}/{r.limit} {r.unit}, "
                            f"{round(100 * r.length / r.limit)}% of the limit: it only just fits")
    if step.action == "template" and plan.alert.references is None:
        try:
            pool = select_channels(app.config.channels, step.channels, kinds=plan.template.kinds, areas=(),
                                   exercise_only=plan.alert.mode == "exercise",
                                   known_areas=app.catalogue.gazetteer.area_codes())
        except InputError:
            pool = list(plan.channels)
        audience: Counter[str] = Counter()
        for row in plan.rows:
            if row.kind == "sms":
                audience[row.channel] += row.recipients
        # An SMS list reaches an area only if it has someone there (approximated: anyone in the alert's areas).
        reaching = [c for c in pool if c.kind != "sms" or audience.get(c.id, 0) > 0]
        for area in plan.alert.areas:
            place = app.catalogue.gazetteer.get(area)
            codes = (area, *(place.areas if place else ()))
            if not any(c.covers_area(code) for c in reaching for code in codes):
                warnings.append(f"no channel in selection {step.channels!r} reaches area {area}")
    audience = Counter()
    for row in plan.rows:
        if row.kind == "sms":
            audience[row.channel] += row.recipients
    for channel, count in audience.items():
        if count == 0:
            warnings.append(f"{channel}: no SMS recipient in {', '.join(plan.alert.areas) or 'any area'}")
    return warnings
