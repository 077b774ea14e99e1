"""Which step occurrence is due when: one rule, used by rehearsals and by real runs.

The rule reads only what has happened so far (the run's ``run_steps`` rows), so a
restarted process picks up exactly where the last one stopped:

* Steps go in order. The first step not yet done is the next one; it is due at
  its ``at`` time, or ``after`` the time the step before it was due (not when it
  happened to finish, so delays never drift), and never before that step.
* A ``confirm`` step is *awaiting* until an operator confirms it; it is then due
  at its own time or at the confirmation, whichever is later.
* A step whose live two-person alert is *held* for a second officer holds the
  run: the steps after it wait, and count from the confirmation once it comes.
* A step with ``every`` repeats (occurrence 1, 2, ...) at fixed intervals from
  its first firing, while later steps go ahead, until its ``until`` step is
  under way or done, or its ``until`` time is reached. A repeat never goes out at
  or after the time its ``until`` step is due.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

from broadcaster.runbooks.inputs import time_of
from broadcaster.runbooks.model import Runbook, Step
from broadcaster.states import StepState
from broadcaster.store.records import RunStepRow

MAX_OCCURRENCES: Final = 200  # a recurring step stops here even if its until step never comes
Rows = Mapping[tuple[str, int], RunStepRow]


@dataclass(frozen=True, slots=True)
class Due:
    step: Step
    occurrence: int
    due_at: float
    awaiting: bool = False  # waits for an operator's confirmation


def rows_by_key(rows: list[RunStepRow]) -> dict[tuple[str, int], RunStepRow]:
    return {(r.step_id, r.occurrence): r for r in rows}


def planned_time(step: Step, anchor: float, inputs: Mapping[str, Mapping[str, str]], tz: ZoneInfo) -> float:
    """When ``step`` is due if the step before it was due at ``anchor`` (confirmation aside)."""
    if step.at is not None:
        return max(anchor, time_of(step.at, inputs, tz=tz, where=f"{step.where}: key 'at'"))
    return anchor + (step.after or 0.0)


def pending(runbook: Runbook, inputs: Mapping[str, Mapping[str, str]], start: float, rows: Rows,
            tz: ZoneInfo) -> list[Due]:
    """Occurrences that should now be scheduled (or confirmed): at most one chain step plus repeats."""
    result: list[Due] = []
    anchor = start
    for step in runbook.steps:
        row = rows.get((step.id, 0))
        if row is not None and row.done:
            # A step held for a second officer went out when confirmed: the steps after it count from then.
            anchor = max(row.due_at or anchor, row.confirmed_at or 0.0)
            continue
        if row is not None and row.state in (StepState.SCHEDULED, StepState.FIRING, StepState.HELD):
            break
        due = planned_time(step, anchor, inputs, tz)
        if step.confirm:
            confirmed = row.confirmed_at if row is not None else None
            if confirmed is None:
                result.append(Due(step, 0, due, awaiting=True))
                break
            due = max(due, confirmed)
        result.append(Due(step, 0, due))
        break
    for step in runbook.steps:
        repeat = next_repeat(step, inputs, rows, tz)
        if repeat is not None:
            result.append(repeat)
    return result


def next_repeat(step: Step, inputs: Mapping[str, Mapping[str, str]], rows: Rows, tz: ZoneInfo) -> Due | None:
    if step.every is None:
        return None
    first = rows.get((step.id, 0))
    if first is None or not first.done or first.due_at is None:
        return None
    if step.action == "template" and first.state != "fired":
        return None  # repeats are updates of the first alert
    last = max(k for (s, k) in rows if s == step.id)
    if not rows[(step.id, last)].done or last + 1 >= MAX_OCCURRENCES:
        return None
    due = first.due_at + (last + 1) * step.every
    if stop_reason(step, due, inputs, rows, tz) is not None:
        return None
    return Due(step, last + 1, due)


def stop_reason(step: Step, due: float, inputs: Mapping[str, Mapping[str, str]], rows: Rows,
                tz: ZoneInfo) -> str | None:
    """Why a repeat of ``step`` due at ``due`` must not go out (its until has come), or None."""
    if step.until is not None:
        until = rows.get((step.until, 0))
        if until is not None and until.state == "fired":
            return f"{step.until} has fired"
        if until is not None and until.state in ("scheduled", "firing") and until.due_at is not None \
                and until.due_at <= due:
            return f"{step.until} is due first"
        if until is not None and until.done:
            return f"{step.until} is {until.state}"
    if step.until_at is not None and due >= time_of(step.until_at, inputs, tz=tz, where=f"{step.where}: key 'until'"):
        return "its until time has come"
    return None


def skip_reason(runbook: Runbook, step: Step, occurrence: int, due: float,
                inputs: Mapping[str, Mapping[str, str]], rows: Rows, tz: ZoneInfo) -> str | None:
    """Why an occurrence due now cannot fire (nothing to follow up, or superseded), or None."""
    if occurrence > 0:
        reason = stop_reason(step, due, inputs, rows, tz)
        if reason is not None:
            return f"repeat not needed: {reason}"
        first = rows.get((step.id, 0))
        if step.action == "template" and (first is None or first.state != "fired" or not first.alert_id):
            return f"repeat of {step.id} #0, which did not fire"
    if step.action in ("update", "cancel"):
        target = rows.get((step.target, 0))
        if target is None or target.state != "fired" or not target.alert_id:
            state = target.state if target is not None else "not reached"
            return f"nothing to {step.action}: step {step.target!r} did not fire ({state})"
    return None


def original_alert(step: Step, rows: Rows) -> str | None:
    """The alert an update, cancel or repeat follows up."""
    key = (step.id, 0) if step.action == "template" else (step.target, 0)
    row = rows.get(key)
    return row.alert_id if row is not None else None


def is_finished(runbook: Runbook, inputs: Mapping[str, Mapping[str, str]], start: float, rows: Rows,
                tz: ZoneInfo) -> bool:
    """Every step done, no repeat left to go, nothing scheduled or awaiting."""
    if any(not r.done for r in rows.values()):
        return False
    if any((s.id, 0) not in rows for s in runbook.steps):
        return False
    return not pending(runbook, inputs, start, rows, tz)
