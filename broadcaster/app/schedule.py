"""Scheduled and recurring one-off alerts: ``fire --at / --every --until``.

A scheduled fire is stored as a one-step run (id ``sch-…``) whose step is a
``scheduled`` row of ``run_steps``, the same schedule runbook steps use; the
scheduler host that leads fires it (``broadcaster schedule run``, ``serve``, or a
``runbook run`` in progress). With ``every``, occurrence 0 is the alert and each
later occurrence re-sends it as an update in the same thread, until ``until``.
Everything is checked when it is scheduled, at the time it will fire, so a
schedule cannot fail on input later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broadcaster.app.context import App
from broadcaster.engine.outbox import Plan, plan_alert
from broadcaster.errors import SelectionError
from broadcaster.runbooks.check import check_runbook, require_clean
from broadcaster.runbooks.durations import DurationError, parse_duration, resolve_datetime
from broadcaster.runbooks.ids import new_run_id
from broadcaster.runbooks.model import Runbook, parse_runbook
from broadcaster.runbooks.steps import advance_run
from broadcaster.states import Mode, RunKind, RunState
from broadcaster.store.records import RunRecord
from broadcaster.templates.variables import Inputs
from broadcaster.timefmt import iso_seconds

MIN_EVERY_S = 60.0


@dataclass
class ScheduledFire:
    """A checked schedule, not yet stored."""

    run: RunRecord
    runbook: Runbook
    plan: Plan  # the first occurrence, as it will go out
    at: datetime
    every_s: float | None
    until: str | None
    count: int  # occurrences in all


def moment(app: App, text: str, what: str, now: float) -> datetime:
    try:
        return resolve_datetime(text, now, app.config.timezone)
    except DurationError as exc:
        raise SelectionError(f"{what}: {exc}") from None


async def plan_schedule(app: App, template: str, inputs: Inputs, *, mode: Mode, areas: tuple[str, ...],
                        selection: str, at: str | None, every: str | None, until: str | None,
                        now: float, started_by: str | None = None) -> ScheduledFire:
    """Check a scheduled fire as it will go out; raise an InputError (nothing stored) on any problem."""
    inputs = {name: {lang: values.get(lang, next(iter(values.values()))) for lang in ("ar", "en")}
              for name, values in inputs.items() if values}
    tz = app.config.timezone
    first = moment(app, at, "--at", now) if at else datetime.fromtimestamp(now, tz)
    if first.timestamp() < now - 60:
        raise SelectionError(f"--at {at}: that time has passed ({iso_seconds(now, tz)} now)")
    step: dict[str, Any] = {"id": "fire", "template": template, "channels": selection, "areas": list(areas),
                            "vars": inputs, "at": first.isoformat()}
    every_s: float | None = None
    count = 1
    if every or until:
        if not (every and until):
            raise SelectionError("--every and --until go together: repeat every DURATION until DATETIME")
        try:
            every_s = parse_duration(every)
        except DurationError as exc:
            raise SelectionError(f"--every: {exc}") from None
        if every_s < MIN_EVERY_S:
            raise SelectionError("--every: repeat at most once a minute")
        last = moment(app, until, "--until", now)
        if last <= first:
            raise SelectionError(f"--until {until}: must come after the first fire ({first.isoformat()})")
        step.update(every=f"{int(every_s)}s", until=last.isoformat())
        count = int((last.timestamp() - first.timestamp() - 1e-6) // every_s) + 1
    plan = await plan_alert(app.config, app.catalogue, template, inputs, mode=mode, now=first.timestamp(),
                            areas=areas, selection=selection)
    run_id = new_run_id(RunKind.SCHEDULE, now)
    raw = {"name": dict(plan.template.title), "description": f"fire {plan.template.id}, scheduled", "steps": [step]}
    runbook = parse_runbook(raw, runbook_id=plan.template.id, source=f"schedule {run_id}")
    require_clean(check_runbook(runbook, app.config, app.catalogue, inputs={}, start=now))
    run = RunRecord(id=run_id, kind=RunKind.SCHEDULE, runbook=plan.template.id, source=None, spec=raw,
                    config=str(app.config.path), mode=mode, inputs={}, state=RunState.RUNNING, started_at=now,
                    started_by=started_by)
    return ScheduledFire(run, runbook, plan, first, every_s, step.get("until"), count)


async def store_schedule(app: App, scheduled: ScheduledFire) -> None:
    """Keep the schedule: the run and its first occurrence's row; the leading host fires it when due."""
    await app.store.runs.create(scheduled.run)
    await advance_run(app.store.runs, scheduled.runbook, scheduled.run, app.config.timezone)
