"""Run scheduled steps: one leading host, APScheduler 3.11 timers, and the schedule kept in ``run_steps``.

Every step occurrence of a run (and every scheduled ``fire --at``) is a
``scheduled`` row of ``run_steps`` with its ``due_at``: that row is the
schedule, shared by every node. The host that leads keeps one in-memory
APScheduler date job per such row and rebuilds them from the rows whenever it
takes the lead and on every poll, so jobs added, confirmed, cancelled or
stopped by any other process are seen within a poll.

Guarantees:

* **One leader executes, and only while it provably leads.** The lead is a
  lease on a row (:mod:`broadcaster.store.leadership`) renewed every poll. The
  host trusts it until ``lead_s - margin_s`` after it *sent* its last successful
  renewal, by its own monotonic clock; nobody else can take it before
  ``lead_s`` after that renewal reached the database. A leader that stalls (a
  GC pause, SIGSTOP, a frozen VM) therefore stops executing before anyone else
  starts. A leader whose process died on this host is replaced at the next poll.
* **Fires once.** A job claims its row (``scheduled -> firing``, one
  compare-and-set) before it plans anything, and the alert is committed only
  while that claim still holds (:class:`~broadcaster.store.records.StepClaim`):
  a job run twice, by two hosts, or by a leader that woke from a stall after
  another re-armed its step, fires once.
* **Survives a restart.** A job whose time passed while no host ran is run once
  (``coalesce``) within the grace window (``misfire_grace_time``, 5 minutes);
  later than that it is *missed*: marked ``missed`` and reported, never silently
  dropped, and the run goes on with its next step.
* **Picks up where it stopped.** On taking the lead (and every poll) the host
  returns a step left ``firing`` by a dead or silent process (or by one of its
  own fires that a database failure broke off) to ``scheduled`` if its alert was
  never committed, and finishes the deliveries of one that was.
* **Outlives a database outage.** While the database does not answer, the host
  executes nothing (it cannot renew its lease) but keeps serving, and takes up
  the schedule again once the database is back.

Firing itself is the application layer's (:class:`StepFirer`): the rules of a
step's alert are those of every other fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from broadcaster.engine.node import DEAD_AFTER_S, Node, process_owner
from broadcaster.errors import StoreError
from broadcaster.runbooks.durations import format_duration
from broadcaster.runbooks.model import Runbook, Step
from broadcaster.runbooks.steps import Fired, advance_run
from broadcaster.runbooks.timeline import is_finished, rows_by_key
from broadcaster.states import RunKind, RunState, StepState
from broadcaster.store import Store, owner_is_dead
from broadcaster.store.leadership import SCHEDULER_LEAD
from broadcaster.store.records import RunRecord, RunStepRow
from broadcaster.timefmt import iso_seconds

log = logging.getLogger("broadcaster.scheduler")

MISFIRE_GRACE_S: Final = 300
POLL_S: Final = 1.0
LEAD_S: Final = 10.0  # the leader's lease, renewed every poll
LEAD_MARGIN_S: Final = 4.0  # the leader stops trusting its lease this long before it runs out


def job_id(run_id: str, step_id: str, occurrence: int) -> str:
    return f"{run_id}/{step_id}/{occurrence}"


def parse_job_id(text: str) -> tuple[str, str, int] | None:
    parts = text.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


class StepFirer(Protocol):
    """How a host fires a step (the application layer decides the rules, as for every fire)."""

    def runbook(self, run: RunRecord) -> Runbook: ...

    async def fire(self, run: RunRecord, step: Step, occurrence: int, *, owner: str) -> Fired: ...

    async def finish(self, run: RunRecord, alert_id: str) -> None:
        """Deliver what is left of a step's alert that was committed before a crash."""
        ...

    async def settle(self, now: float) -> list[str]:
        """Held steps whose second officer never came fail (or fire, if one did): what happened, to report."""
        ...


class Host:
    """Executes the schedule on the running event loop while it leads; follows (and may take over) otherwise."""

    def __init__(self, store: Store, firer: StepFirer, *, tz: Any, grace_s: float = MISFIRE_GRACE_S,
                 poll_s: float = POLL_S, lead_s: float = LEAD_S, lead_margin_s: float = LEAD_MARGIN_S,
                 report: Callable[[str], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not 0 < lead_margin_s < lead_s or poll_s >= lead_s - lead_margin_s:
            raise ValueError("the leader must renew its lease well before it stops trusting it")
        self.store = store
        self.firer = firer
        self.tz = tz
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.lead_s = lead_s
        self.lead_margin_s = lead_margin_s
        self.report = report or (lambda line: None)
        self.owner = process_owner()
        self._monotonic = monotonic
        self.scheduler: Any = None
        self.fired: list[Fired] = []
        self.missed: list[tuple[str, str, int]] = []
        self.is_leader = False
        self._lead_until = float("-inf")
        self._paused = False
        self._said_follower = False
        self._told: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()  # jobs submitted whose function has not returned yet
        self._firing: set[tuple[str, str, int]] = set()  # occurrences this host is firing right now
        self._firing_tasks: set[asyncio.Task[Any]] = set()  # the tasks firing them
        self._broken_off: set[tuple[str, str, int]] = set()  # its fires a store error broke off, left "firing"
        self._membership = contextlib.AsyncExitStack()  # this host's node: registered and beating while it runs

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, *, paused: bool = False) -> None:
        """Register this host and try to lead; a leader recovers what a dead process left and starts executing
        due jobs (``paused``: lead and keep the schedule, but execute nothing)."""
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._on_error, EVENT_JOB_ERROR)
        self.scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.add_listener(self._on_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self._paused = paused
        self.scheduler.start(paused=True)  # executes nothing until this host leads
        # A node of its own: by its heartbeat, a later leader knows whether a step it left "firing" is orphaned.
        await self._membership.enter_async_context(Node(self.store, "scheduler", owner=self.owner).running())
        await self.poll()

    async def shutdown(self) -> None:
        """Stop: cancel the jobs and deliveries in flight (the next leader recovers what they claimed), give
        the lead up so the next host leads at once, and sign this host's node off."""
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)  # this cancels the jobs in flight
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on its loop's next turn
        for task in self._tasks:
            task.cancel()
        # Let them wind down (a delivery signs its own node off) while the store is still open.
        busy = [t for t in (*self._firing_tasks, *self._tasks) if t is not asyncio.current_task()]
        await asyncio.gather(*busy, return_exceptions=True)
        if self.is_leader:
            self.is_leader = False
            with contextlib.suppress(StoreError):
                await self.store.leadership.release(SCHEDULER_LEAD, self.owner)  # the next host leads at once
        await self._membership.aclose()

    async def serve(self, *, run_id: str | None = None, until_idle: bool = False) -> RunRecord | None:
        """Execute jobs while leading until ``run_id`` ends (or, with ``until_idle``, nothing is left to do)."""
        runs = self.store.runs
        while True:
            run: RunRecord | None = None
            try:
                await self.poll()
                if run_id is not None:
                    run = await runs.get(run_id)
                    done = run.state != RunState.RUNNING
                else:
                    done = until_idle and not [r for r in await runs.recent((RunState.RUNNING,))
                                               if r.kind != RunKind.REHEARSAL]
            except StoreError as exc:  # the database is away: execute nothing until it is back, then go on
                self._step_down(f"the database failed: {exc}")
                done = False
            if done:
                await self._drain()
                return run
            await asyncio.sleep(self.poll_s)

    # --- leadership -------------------------------------------------------------------

    def leads(self) -> bool:
        """Whether this host may execute a job now: it leads, and its lease holds by its own monotonic clock."""
        if self.is_leader and self._monotonic() >= self._lead_until:
            self._step_down("its lease was not renewed in time (stalled, or the database was away)")
        return self.is_leader

    async def poll(self) -> bool:
        """Renew, take or lose the lead; when leading, recover and rebuild the timers. True while leading."""
        sent = self._monotonic()
        held = await self.store.leadership.try_lead(SCHEDULER_LEAD, self.owner, self.lead_s)
        if not held:
            holder = await self.store.leadership.holder(SCHEDULER_LEAD)
            if holder is not None and owner_is_dead(holder):
                # Its process on this host is gone: no need to wait for its lease to run out.
                await self.store.leadership.release(SCHEDULER_LEAD, holder)
                sent = self._monotonic()
                held = await self.store.leadership.try_lead(SCHEDULER_LEAD, self.owner, self.lead_s)
        if not held:
            if self.is_leader:
                self._step_down("another host holds the lead")
            elif not self._said_follower:
                self._said_follower = True
                self.report("another node leads the scheduler and executes the jobs; this host takes over "
                            "if it stops")
            if self._broken_off:
                # Its own fires a database failure broke off while it led: the leader sees this host alive and
                # leaves them be, so this host hands them back itself.
                await self.recover(own_only=True)
            return False
        self._lead_until = sent + self.lead_s - self.lead_margin_s
        if not self.is_leader:
            self.is_leader = True
            self._said_follower = False
            self.report(f"this host ({self.owner}) leads the scheduler: it executes the scheduled jobs")
            if not self._paused:
                self.scheduler.resume()
        await self.recover()
        for line in await self.firer.settle(time.time()):
            self.report(line)
        await self.sync_all()
        self.scheduler.wakeup()
        return True

    def _step_down(self, why: str) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        log.warning("scheduler leadership lost: %s", why)
        self.report(f"this host no longer leads the scheduler ({why}): it executes no more jobs; "
                    "another node takes over")

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- the schedule -----------------------------------------------------------------

    async def start_run(self, run: RunRecord) -> None:
        await self.store.runs.create(run)
        self.report(f"run {run.id} started: {run.runbook} · {run.mode}")
        await self.sync(run)

    async def sync_all(self) -> None:
        """Rows for what every running run needs next, then one timer per scheduled row (and none for others)."""
        for run in await self.store.runs.recent((RunState.RUNNING,)):
            if run.kind != RunKind.REHEARSAL:
                await self._advance(run)
        await self._timers()

    async def sync(self, run: RunRecord) -> None:
        if run.state == RunState.RUNNING:
            await self._advance(run)
        await self._timers()

    async def _advance(self, run: RunRecord) -> None:
        runbook = self.firer.runbook(run)
        for due in await advance_run(self.store.runs, runbook, run, self.tz):
            self.report(f"{run.id}: {due.step.id} #{due.occurrence} scheduled for {iso_seconds(due.due_at, self.tz)}")
        rows = await self.store.runs.steps(run.id)
        for row in rows:
            if row.state == StepState.AWAITING and row.confirmed_at is None and (run.id, row.step_id) not in self._told:
                self._told.add((run.id, row.step_id))
                since = iso_seconds(row.due_at, self.tz) if row.due_at else "now"
                self.report(f"{run.id}: {row.step_id} waits for an operator (due from {since}): "
                            f"broadcaster runbook confirm {run.id} {row.step_id}")
        if is_finished(runbook, run.inputs, run.started_at, rows_by_key(rows), self.tz) \
                and await self.store.runs.end(run.id, RunState.FINISHED, time.time()):
            self.report(f"run {run.id} finished")

    async def _timers(self) -> None:
        wanted: dict[str, RunStepRow] = {job_id(r.run_id, r.step_id, r.occurrence): r
                                         for r in await self.store.runs.scheduled()}
        for job in self.scheduler.get_jobs():
            if job.id not in wanted and job.id not in self._running:
                with contextlib.suppress(JobLookupError):
                    self.scheduler.remove_job(job.id)
        for key, row in wanted.items():
            if key in self._running or self.scheduler.get_job(key) is not None:
                continue
            assert row.due_at is not None
            self.scheduler.add_job(
                self._job, trigger="date", run_date=datetime.fromtimestamp(row.due_at, UTC),
                args=[row.run_id, row.step_id, row.occurrence], id=key,
                name=f"{row.run_id} {row.step_id} #{row.occurrence}", misfire_grace_time=int(self.grace_s),
                coalesce=True, max_instances=1, replace_existing=True,
            )

    def jobs(self) -> list[str]:
        """The timers this host holds now (job ids ``RUN/STEP/N``)."""
        return [job.id for job in self.scheduler.get_jobs()] if self.scheduler is not None else []

    async def recover(self, *, own_only: bool = False) -> None:
        """Steps left ``firing`` by a process that died or went silent, or by a fire of this host's that a
        database failure broke off: re-arm them, or finish their deliveries (``own_only``: the latter only)."""
        runs = self.store.runs
        firing = [(run, row) for run in await runs.recent((RunState.RUNNING,)) if run.kind != RunKind.REHEARSAL
                  for row in await runs.steps(run.id) if row.state == StepState.FIRING and row.owner
                  and (row.owner != self.owner or self._orphaned((run.id, row.step_id, row.occurrence)))
                  and not (own_only and row.owner != self.owner)]
        if not firing:
            return
        owners = {row.owner for _, row in firing if row.owner and row.owner != self.owner}
        dead = ({self.owner} | {o for o in owners if owner_is_dead(o)}
                | await self.store.nodes.gone(owners, DEAD_AFTER_S))
        for run, row in firing:
            if row.owner not in dead:
                continue
            key = (run.id, row.step_id, row.occurrence)
            self._broken_off.discard(key)
            why = "its fire broke off (the database failed)" if row.owner == self.owner else "its host died"
            # Its alert never reached the outbox (the commit writes alert_id): nothing went out, so it may fire
            # after all. The old owner's claim is gone with this, so it can never commit the step later.
            if await runs.move_step(*key, from_states=(StepState.FIRING,), to_state=StepState.SCHEDULED,
                                    owner_is=row.owner, uncommitted=True, owner=None,
                                    detail=f"re-armed after {why} before its alert was committed"):
                continue
            if row.alert_id is None or not await runs.move_step(
                    *key, from_states=(StepState.FIRING,), to_state=StepState.FIRED, owner_is=row.owner,
                    detail=f"committed before {why}; deliveries resumed"):
                continue
            self.report(f"{run.id}: {row.step_id} #{row.occurrence} was committed before a crash; "
                        f"resuming the deliveries of {row.alert_id}")
            self._spawn(self.firer.finish(run, row.alert_id))

    def _orphaned(self, key: tuple[str, str, int]) -> bool:
        """Whether this host's own "firing" row was left so by a store error, and is not being fired again."""
        return key in self._broken_off and key not in self._firing

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- jobs ------------------------------------------------------------------------

    async def _job(self, run_id: str, step_id: str, occurrence: int) -> Fired | None:
        """Fire one occurrence (at most once, whoever calls), then schedule what comes next."""
        key = job_id(run_id, step_id, occurrence)
        if not self.leads():
            # Its row is still "scheduled": the leader's next poll gives it a timer and fires it there.
            log.warning("job %s not run: this host does not lead the scheduler", key)
            return None
        occurrence_key = (run_id, step_id, occurrence)
        task = asyncio.current_task()
        self._broken_off.discard(occurrence_key)
        self._firing.add(occurrence_key)
        if task is not None:
            self._firing_tasks.add(task)
        try:
            run = await self.store.runs.find(run_id)
            step = self.firer.runbook(run).step(step_id) if run is not None else None
            if run is None or step is None:
                log.warning("job %s names no known run or step: ignored", key)
                return None
            fired = await self.firer.fire(run, step, occurrence, owner=self.owner)
        except StoreError as exc:
            # Left "scheduled", or "firing" under this host's claim: a poll once the database answers again
            # gives it a new timer, re-arms it, or finishes its deliveries (see recover).
            self._broken_off.add(occurrence_key)
            log.warning("job %s broken off: the database failed: %s", key, exc)
            self.report(f"{run_id}: {step_id} #{occurrence} not fired yet: the database failed ({exc}); "
                        "it is taken up again once the database answers")
            return None
        finally:
            self._firing.discard(occurrence_key)
            if task is not None:
                self._firing_tasks.discard(task)
        if fired.state != "taken":
            self.fired.append(fired)
            alert = f" · alert {fired.alert_id}" if fired.alert_id else ""
            self.report(f"{run_id}: {step_id} #{occurrence} {fired.state}{alert} · {fired.detail or ''}")
        await self.sync(await self.store.runs.get(run_id))
        return fired

    def _on_missed(self, event: Any) -> None:
        parsed = parse_job_id(str(event.job_id))
        if parsed is not None:
            self._spawn(self._missed(parsed, event.scheduled_run_time.timestamp()))

    async def _missed(self, key: tuple[str, str, int], due: float) -> None:
        if not self.leads():  # a host that woke from a stall decides nothing: the leader reports it
            return
        late = time.time() - due
        detail = (f"missed: due {iso_seconds(due, self.tz)}, no scheduler ran until {format_duration(late)} later, "
                  f"beyond the {format_duration(self.grace_s)} grace window; not sent")
        if await self.store.runs.move_step(*key, from_states=(StepState.SCHEDULED,), to_state=StepState.MISSED,
                                           detail=detail):
            self.missed.append(key)
            self.report(f"MISSED {key[0]}: {key[1]} #{key[2]}: {detail}")
        run = await self.store.runs.find(key[0])
        if run is not None:
            await self.sync(run)

    def _on_submitted(self, event: Any) -> None:
        self._running.add(str(event.job_id))

    def _on_done(self, event: Any) -> None:
        self._running.discard(str(event.job_id))

    def _on_error(self, event: Any) -> None:
        if isinstance(event.exception, asyncio.CancelledError):  # the host stopped while the job ran
            self.report(f"job {event.job_id} stopped with this host: the next leader takes it up")
            return
        log.error("job %s raised %r", event.job_id, event.exception)
        self.report(f"ERROR in job {event.job_id}: {event.exception!r}")
