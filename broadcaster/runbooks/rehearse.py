"""Rehearse a runbook: the real pipeline, dry-run, on one virtual clock.

The whole rehearsal is one coroutine on one :class:`~broadcaster.clock.VirtualTimeLoop`
inside :func:`~broadcaster.netguard.no_network`. Each step is planned with the real
``plan_alert`` / ``plan_update`` / ``plan_cancel``, committed to the outbox and
delivered by the real dispatcher to the real channel adapters on recording
transports, with rate limits and the delivery log, exactly as a run would. Waiting for the next step is
``await clock.sleep(...)``, which the virtual loop skips in no time, so a
12-hour runbook plays out in well under a second. Steps that wait for an operator
are confirmed automatically and flagged.

The run, its steps and their alerts are stored under the rehearsal's own run id,
so ``broadcaster log RUN_ID`` reads a rehearsal like a real run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from broadcaster.app import App
from broadcaster.clock import Clock, run_virtual
from broadcaster.netguard import no_network
from broadcaster.runbooks.check import check_runbook, require_clean
from broadcaster.runbooks.firing import Fired, advance_run, fire_occurrence
from broadcaster.runbooks.inputs import Inputs
from broadcaster.runbooks.model import Runbook
from broadcaster.runbooks.records import RunRecord
from broadcaster.runbooks.store import new_run_id, run_store
from broadcaster.runbooks.timeline import MAX_OCCURRENCES

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


async def play(app: App, runbook: Runbook, run: RunRecord, *, plan_mode: str, clock: Clock) -> Rehearsal:
    """Play every step of ``run`` on ``clock`` (virtual), firing each through the engine in dry-run."""
    store = run_store(app)
    result = Rehearsal(run=run, runbook=runbook, start=clock.now(), end=clock.now())
    order = {s.id: s.index for s in runbook.steps}
    while True:
        advance_run(app, runbook, run, auto_confirm=True)
        scheduled = [r for r in store.run_steps(run.id) if r.state == "scheduled"]
        if not scheduled:
            break
        row = min(scheduled, key=lambda r: (r.due_at or 0.0, order[r.step_id], r.occurrence))
        step = runbook.step(row.step_id)
        assert step is not None and row.due_at is not None
        await clock.sleep(row.due_at - clock.now())
        fired = await fire_occurrence(app, runbook, run, step, row.occurrence, owner=OWNER,
                                      plan_mode=plan_mode, deliver_mode="dry-run", clock=clock)
        result.entries.append(Entry(fired, auto_confirmed=step.confirm and row.occurrence == 0))
        if fired.state == "failed":
            result.warnings.append(f"{step.where}: failed: {fired.detail}")
    result.end = clock.now()
    for step in runbook.steps:
        count = sum(1 for e in result.entries if e.fired.step.id == step.id)
        if step.every is not None and count >= MAX_OCCURRENCES:
            result.warnings.append(f"{step.where}: repeated {count} times and stopped there, before its until")
    store.end_run(run.id, "finished", result.end)
    return result


def rehearse(app: App, runbook: Runbook, inputs: Inputs, *, start: float | None = None,
             plan_mode: str = "dry-run", guard_network: bool = True) -> Rehearsal:
    """Check, then play the whole runbook on a virtual clock with no network at all.

    ``guard_network=False`` leaves out the process-wide :func:`no_network` patch (the
    deliveries still go to recording transports only): the server rehearses on a worker thread
    and must not block the live sends of its own loop meanwhile.
    """
    began = time.perf_counter()
    start = time.time() if start is None else start
    problems = check_runbook(runbook, app.config, app.catalogue, inputs=inputs, start=start)
    require_clean(problems)
    run = RunRecord(id=new_run_id("rehearsal", start), kind="rehearsal", runbook=runbook.id, source=runbook.source,
                    spec=dict(runbook.raw), config=str(app.config.path), mode="dry-run" if plan_mode == "dry-run"
                    else plan_mode, inputs=inputs, state="running", started_at=start)
    run_store(app).create_run(run)

    async def main() -> Rehearsal:
        return await play(app, runbook, run, plan_mode=plan_mode, clock=Clock(wall_start=start))

    if guard_network:
        with no_network():
            result = run_virtual(main())
    else:
        result = run_virtual(main())
    result.warnings[:0] = [str(p) for p in problems if p.level == "warning"]
    result.wall_s = time.perf_counter() - began
    return result
