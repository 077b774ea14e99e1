"""What a step occurrence is due next, and what one did: the run's bookkeeping in ``run_steps``.

:func:`advance_run` writes the rows of whatever is due next (the one rule of
:mod:`broadcaster.runbooks.timeline`); rehearsals and the scheduler host both
use it, so a restarted process picks up exactly where the last one stopped.
Firing an occurrence is the application layer's (``broadcaster.app.runbook``):
it decides the rules (two-person, exercise, withdraw-before-cancel) for steps
as for every other fire.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo

from broadcaster.config import Config
from broadcaster.engine.outbox import Plan
from broadcaster.errors import InputError
from broadcaster.runbooks.model import Runbook, Step
from broadcaster.runbooks.timeline import Due, pending, rows_by_key
from broadcaster.selection import select_channels
from broadcaster.states import StepState
from broadcaster.store.ports import Runs
from broadcaster.store.records import RunRecord
from broadcaster.templates.gazetteer import Gazetteer

NEAR_LIMIT: Final = 0.9  # warn when a text uses more than this share of its channel's limit


@dataclass
class Fired:
    """What one occurrence did."""

    step: Step
    occurrence: int
    state: str  # fired | failed | skipped | held | taken (another job had it)
    time: float
    plan: Plan | None = None
    detail: str | None = None
    warnings: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)  # delivery state -> count

    @property
    def alert_id(self) -> str | None:
        return self.plan.alert.id if self.plan is not None else None


async def advance_run(runs: Runs, runbook: Runbook, run: RunRecord, tz: ZoneInfo, *,
                      auto_confirm: bool = False) -> list[Due]:
    """Write the rows of what is due next; return the occurrences newly scheduled.

    Idempotent: it only adds rows that do not exist yet and moves confirmed
    ``awaiting`` rows to ``scheduled``. ``auto_confirm`` (rehearsals) confirms a
    step the moment it is due.
    """
    new: list[Due] = []
    for _ in range(len(runbook.steps) + 1):  # each auto-confirmation makes one more step schedulable
        confirmed = False
        for due in pending(runbook, run.inputs, run.started_at, rows_by_key(await runs.steps(run.id)), tz):
            key = (run.id, due.step.id, due.occurrence)
            if due.awaiting:
                await runs.put_step(*key, StepState.AWAITING, due.due_at)
                if auto_confirm:
                    confirmed = await runs.move_step(*key, from_states=(StepState.AWAITING,),
                                                     to_state=StepState.AWAITING, confirmed_at=due.due_at)
                continue
            if await runs.put_step(*key, StepState.SCHEDULED, due.due_at) or await runs.move_step(
                    *key, from_states=(StepState.AWAITING,), to_state=StepState.SCHEDULED, due_at=due.due_at):
                new.append(due)
        if not confirmed:
            break
    return new


def plan_warnings(config: Config, gazetteer: Gazetteer, step: Step, plan: Plan) -> list[str]:
    """Texts that only just fit, areas no selected channel covers, recipient lists with nobody in the area."""
    warnings: list[str] = []
    for row in plan.rows:
        r = row.rendered
        if r.limit and r.length > NEAR_LIMIT * r.limit:
            warnings.append(f"{row.channel} ({r.language}): {r.length}/{r.limit} {r.unit}, "
                            f"{round(100 * r.length / r.limit)}% of the limit: it only just fits")
    audience: Counter[str] = Counter()
    listed = {c.id for c in plan.channels if c.recipients is not None}
    for row in plan.rows:
        if row.channel in listed:
            audience[row.channel] += row.recipients
    if step.action == "template" and plan.alert.references is None:
        try:
            pool = select_channels(config.channels, step.channels, kinds=plan.template.kinds, areas=(),
                                   mode=plan.alert.mode, known_areas=gazetteer.area_codes())
        except InputError:
            pool = list(plan.channels)
        # A list reaches an area only if it has someone there (approximated: anyone in the alert's areas).
        reaching = [c for c in pool if c.recipients is None or audience.get(c.id, 0) > 0]
        for area in plan.alert.areas:
            place = gazetteer.get(area)
            codes = (area, *(place.areas if place else ()))
            if not any(c.covers_area(code) for c in reaching for code in codes):
                warnings.append(f"no channel in selection {step.channels!r} reaches area {area}")
    for channel, count in audience.items():
        if count == 0:
            warnings.append(f"{channel}: no recipient in {', '.join(plan.alert.areas) or 'any area'}")
    return warnings
