"""Run scheduled steps with APScheduler 3.11 and a persistent job store.

Every step occurrence of a run (and every scheduled ``fire --at``) is one *date*
job in the ``scheduler_jobs`` table of the main database (a
:class:`~broadcaster.runbooks.jobstore.DatabaseJobStore`, SQLite or
PostgreSQL), so the schedule outlives the process and every node sees it. A job
names a module-level function by textual reference with plain arguments,
``run_step_job(run_id, step_id, occurrence)``; the process that executes it (a
:class:`Host`: ``broadcaster runbook run``, ``broadcaster schedule run``,
``broadcaster serve``) finds everything else in the database.

Guarantees:

* **One leader executes.** Only the host that leads the scheduler
  (:mod:`broadcaster.runbooks.leader`: a PostgreSQL advisory lock; on SQLite
  every host leads) executes jobs. Other hosts keep their scheduler paused,
  may still add and remove jobs, and try to take the lead every ``poll_s``;
  when the leader's process dies its lock goes with its session, and the next
  host to poll takes over the same schedule. A host whose lock connection dies
  stops executing jobs at once.
* **Fires once.** The job claims its ``run_steps`` row (``scheduled -> firing``,
  one compare-and-set statement) before it plans anything; a job run twice, or by
  two hosts (two leaders for a moment, a takeover), fires once.
* **Survives a restart.** Jobs stay in the job store. A job whose time passed
  while no host ran is run once (``coalesce``) if it is within the grace window
  (``misfire_grace_time``, 5 minutes); later than that it is *missed*:
  ``EVENT_JOB_MISSED`` marks the step ``missed`` and reports it, never silently
  dropping it, and the run goes on with its next step.
* **Picks up where it stopped.** When a host takes the lead (and every poll
  while it leads) it reschedules what its runs need (a step whose job vanished
  in a crash, a step confirmed meanwhile, a job a former leader took but did not
  fire), returns a step left ``firing`` by a dead process to ``scheduled`` if its
  alert was never committed, and finishes the deliveries of one that was. A
  process is dead when its pid is gone from this machine, or when its node (each
  host registers as a ``scheduler`` node) stopped or fell silent.
* Hosts poll the database (every ``poll_s``) for leadership, confirmations,
  stops and jobs added by other processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import BaseScheduler

from broadcaster.app import App, load_app
from broadcaster.clock import Clock
from broadcaster.engine.dispatcher import process_owner
from broadcaster.engine.node import DEAD_AFTER_S, Node
from broadcaster.engine.runner import deliver
from broadcaster.runbooks.durations import format_duration
from broadcaster.runbooks.firing import Fired, advance_run, fire_occurrence
from broadcaster.runbooks.jobstore import DatabaseJobStore
from broadcaster.runbooks.leader import Leadership, leadership_for
from broadcaster.runbooks.model import Runbook, parse_runbook
from broadcaster.runbooks.records import RunRecord
from broadcaster.runbooks.store import run_store
from broadcaster.runbooks.timeline import is_finished, rows_by_key
from broadcaster.store.common import SqlStore, owner_is_dead
from broadcaster.store.sql import marks
from broadcaster.timefmt import iso_seconds

log = logging.getLogger("broadcaster.scheduler")

MISFIRE_GRACE_S: Final = 300
POLL_S: Final = 1.0
JOB_FUNC: Final = "broadcaster.runbooks.scheduler:run_step_job"

_HOST: Host | None = None  # the host that last took the lead in this process: job functions call it


def job_id(run_id: str, step_id: str, occurrence: int) -> str:
    return f"{run_id}/{step_id}/{occurrence}"


def parse_job_id(text: str) -> tuple[str, str, int] | None:
    parts = text.split("/")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def add_step_job(scheduler: Any, run_id: str, step_id: str, occurrence: int, due_at: float,
                 grace_s: float = MISFIRE_GRACE_S) -> None:
    """One date job for one occurrence; its id is stable, so adding it twice keeps one."""
    scheduler.add_job(
        JOB_FUNC, trigger="date", run_date=datetime.fromtimestamp(due_at, UTC), args=[run_id, step_id, occurrence],
        id=job_id(run_id, step_id, occurrence), name=f"{run_id} {step_id} #{occurrence}",
        misfire_grace_time=int(grace_s), coalesce=True, max_instances=1, replace_existing=True,
    )


def remove_run_jobs(scheduler: Any, run_id: str) -> int:
    removed = 0
    for job in scheduler.get_jobs():
        if job.id.startswith(f"{run_id}/"):
            try:
                scheduler.remove_job(job.id)
                removed += 1
            except JobLookupError:
                pass  # another process ran or removed it meanwhile
    return removed


def _job_store(app: App) -> DatabaseJobStore:
    return DatabaseJobStore(run_store(app).db)


class _Editor(BaseScheduler):  # type: ignore[misc]
    """A scheduler that never executes anything: it only adds, lists and removes jobs of the store.

    Not a paused BackgroundScheduler: when one is shut down, its thread makes one last pass over
    the due jobs, which would run them (and drop them from the store) in a `schedule list`.
    """

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        """Never look for due jobs: only a :class:`Host` executes them."""


@contextmanager
def job_store(app: App) -> Iterator[Any]:
    """The persistent job store, to add, list or remove jobs from any process (leader or not); nothing is executed."""
    scheduler = _Editor(timezone=UTC, jobstores={"default": _job_store(app)})
    scheduler.start(paused=True)
    try:
        yield scheduler
    finally:
        scheduler.shutdown(wait=False)


class _Scheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler that tolerates a job already removed by another host sharing the job store."""

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None:
        try:
            super().remove_job(job_id, jobstore)
        except JobLookupError:
            log.info("job %s was already removed (another host ran it)", job_id)


async def run_step_job(run_id: str, step_id: str, occurrence: int) -> None:
    """The job function every scheduled step occurrence names (by textual reference)."""
    host = _HOST
    if host is None:
        raise RuntimeError("no scheduler host runs in this process; start one with `broadcaster schedule run`")
    await host.fire(run_id, step_id, occurrence)


class Host:
    """Executes the jobs of the persistent job store in this process, on the running event loop, while it leads.

    ``is_leader`` says whether this host executes jobs now; a host that does not
    lead takes over when the leader goes (see :mod:`broadcaster.runbooks.leader`).
    """

    def __init__(self, app: App, *, grace_s: float = MISFIRE_GRACE_S, poll_s: float = POLL_S,
                 report: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.report = report or (lambda line: None)
        self.owner = process_owner()
        self.scheduler: Any = None
        self.fired: list[Fired] = []
        self.missed: list[tuple[str, str, int]] = []
        self._apps: dict[str, App] = {}
        self._runbooks: dict[str, Runbook] = {}
        self._told: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.leadership: Leadership | None = None
        self.is_leader = False
        self._paused = False
        self._said_follower = False
        self._running: set[str] = set()  # jobs taken from the store whose function has not returned yet
        self._membership = ExitStack()  # this host's node (engine.node): registered and beating while it runs

    # --- lifecycle ----------------------------------------------------------------

    async def start(self, *, paused: bool = False) -> None:
        """Open the job store and register this host; if it can lead, recover what a dead process left and
        start executing due jobs (``paused``: lead, but leave the jobs in the store)."""
        self.scheduler = _Scheduler(timezone=UTC, jobstores={"default": _job_store(self.app)})
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._on_error, EVENT_JOB_ERROR)
        self.scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.add_listener(self._on_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self._paused = paused
        self.scheduler.start(paused=True)  # executes nothing until this host leads
        # A node of its own: by its heartbeat, a later leader knows whether a step it left "firing" is orphaned.
        self._membership.enter_context(Node(self.app.store, "scheduler", owner=self.owner).running())
        self.leadership = leadership_for(self.app.store, self.owner)
        self.poll_leadership()

    async def shutdown(self) -> None:
        global _HOST
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on its loop's next turn
        self.is_leader = False
        if self.leadership is not None:
            self.leadership.release()  # the next host to poll leads at once
        if _HOST is self:
            _HOST = None
        self._membership.close()
        for app in self._apps.values():
            app.close()

    async def serve(self, *, run_id: str | None = None, until_idle: bool = False) -> RunRecord | None:
        """Execute jobs while leading until ``run_id`` ends (or, with ``until_idle``, nothing is left to do)."""
        store = run_store(self.app)
        try:
            while True:
                if self.poll_leadership():
                    self.recover()
                    self.sync_all()
                    self.scheduler.wakeup()  # notice jobs that other processes added to the job store
                if run_id is not None:
                    run = store.run(run_id)
                    if run.state != "running":
                        await self._drain()
                        return run
                elif until_idle and not store.runs(("running",)) and not self.scheduler.get_jobs():
                    await self._drain()
                    return None
                await asyncio.sleep(self.poll_s)
        except BaseException:
            # Stopped or failed (a database error, say): a host that no longer polls must not keep the
            # lead, or no other node could take the schedule over.
            if self.is_leader and self.leadership is not None and self.leadership.contested:
                self._step_down("it stopped serving")
            raise

    # --- leadership -------------------------------------------------------------------

    def poll_leadership(self) -> bool:
        """Keep, lose or take the lead; start or stop executing jobs to match. True while this host leads."""
        assert self.leadership is not None, "start() the host first"
        if self.is_leader:
            return self.still_leading()
        if not self.leadership.try_acquire():
            if not self._said_follower:
                self._said_follower = True
                self.report("another node leads the scheduler and executes the jobs; this host takes over "
                            "if it stops")
            return False
        self._take_lead()
        return True

    def still_leading(self) -> bool:
        """Whether this host still leads; if its lock is gone, it stops executing jobs now."""
        if not self.is_leader or self.leadership is None:
            return False
        if self.leadership.held():
            return True
        self._step_down("its PostgreSQL lock connection ended")
        return False

    def _take_lead(self) -> None:
        global _HOST
        assert self.leadership is not None
        self.is_leader = True
        self._said_follower = False
        _HOST = self
        if self.leadership.contested:
            self.report(f"this host ({self.owner}) leads the scheduler: it executes the scheduled jobs")
        self.recover()
        if not self._paused:
            self.scheduler.resume()
        self.sync_all()

    def _step_down(self, why: str) -> None:
        # _HOST stays: a job already taken from the store finds this host, which declines to fire it.
        self.is_leader = False
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        if self.leadership is not None:
            self.leadership.release()
        log.warning("scheduler leadership lost: %s", why)
        self.report(f"this host no longer leads the scheduler ({why}): it executes no more jobs; "
                    "another node takes over")

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- runs ------------------------------------------------------------------------

    def runbook_for(self, run: RunRecord) -> Runbook:
        if run.id not in self._runbooks:
            self._runbooks[run.id] = parse_runbook(run.spec, runbook_id=run.runbook, source=run.source or run.id)
        return self._runbooks[run.id]

    def app_for(self, run: RunRecord) -> App:
        """The run's own channels.toml (it may not be this host's), over this host's database."""
        if run.config is None or Path(run.config).resolve() == Path(self.app.config.path).resolve():
            return self.app
        if run.config not in self._apps:
            self._apps[run.config] = load_app(run.config, self.app.database)
        return self._apps[run.config]

    def start_run(self, run: RunRecord) -> None:
        run_store(self.app).create_run(run)
        self.report(f"run {run.id} started: {run.runbook} · {run.mode}")
        self.sync(run)

    def sync_all(self) -> None:
        for run in run_store(self.app).runs(("running",)):
            if run.kind != "rehearsal":
                self.sync(run)

    def sync(self, run: RunRecord) -> None:
        """Schedule what the run needs next; finish it when nothing is left."""
        if run.state != "running":
            return
        store = run_store(self.app)
        runbook = self.runbook_for(run)
        app = self.app_for(run)
        for due in advance_run(app, runbook, run):
            add_step_job(self.scheduler, run.id, due.step.id, due.occurrence, due.due_at, self.grace_s)
            when = iso_seconds(due.due_at, self.app.config.timezone)
            self.report(f"{run.id}: {due.step.id} #{due.occurrence} scheduled for {when}")
        tz = self.app.config.timezone
        rows = store.run_steps(run.id)
        for row in rows:
            key = job_id(run.id, row.step_id, row.occurrence)
            if row.state == "scheduled" and row.due_at is not None and key not in self._running \
                    and self.scheduler.get_job(key) is None:
                # The row is scheduled but its job is gone (a crash between the two): schedule it again.
                # If it already ran, its claim fails and nothing fires twice.
                add_step_job(self.scheduler, run.id, row.step_id, row.occurrence, row.due_at, self.grace_s)
            if row.state == "awaiting" and row.confirmed_at is None and (run.id, row.step_id) not in self._told:
                self._told.add((run.id, row.step_id))
                since = iso_seconds(row.due_at, tz) if row.due_at else "now"
                self.report(f"{run.id}: {row.step_id} waits for an operator (due from {since}): "
                            f"broadcaster runbook confirm {run.id} {row.step_id}")
        if is_finished(runbook, run.inputs, run.started_at, rows_by_key(rows), tz) \
                and store.end_run(run.id, "finished", time.time()):
            self.report(f"run {run.id} finished")

    def recover(self) -> None:
        """Steps left ``firing`` by a process that died: re-arm them, or finish their deliveries."""
        store = run_store(self.app)
        firing = [(run, row) for run in store.runs(("running",)) if run.kind != "rehearsal"
                  for row in store.run_steps(run.id) if row.state == "firing" and row.owner]
        dead = self.dead_owners(store, {row.owner for _, row in firing if row.owner}) if firing else set()
        for run, row in firing:
            if row.owner not in dead:
                continue
            key = (run.id, row.step_id, row.occurrence)
            committed = row.alert_id is not None and bool(self.app.store.deliveries(row.alert_id))
            if not committed:
                # Its alert never reached the outbox: nothing went out, so it may fire (once) after all.
                store.move_run_step(*key, from_states=("firing",), to_state="scheduled",
                                    detail="re-armed after a crash before its alert was committed")
                continue
            assert row.alert_id is not None
            store.move_run_step(*key, from_states=("firing",), to_state="fired",
                                detail="committed before a crash; deliveries resumed")
            self.report(f"{run.id}: {row.step_id} #{row.occurrence} was committed before a crash; "
                        f"resuming the deliveries of {row.alert_id}")
            task = asyncio.get_running_loop().create_task(self._resume(run, row.alert_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def dead_owners(self, store: SqlStore, owners: set[str]) -> set[str]:
        """Which of ``owners`` (host:pid:token) are gone: the pid is gone from this machine, or the node that
        host registered stopped or has not beaten for ``DEAD_AFTER_S`` (a leader on another machine)."""
        dead = {o for o in owners if owner_is_dead(o)}
        others = sorted(owners - dead - {self.owner})
        if others:
            silent_since = time.time() - DEAD_AFTER_S
            for node_id, heartbeat_at, stopped_at in store.db.execute(
                    f"SELECT id, heartbeat_at, stopped_at FROM nodes WHERE id IN ({marks(others)})", others):
                if stopped_at is not None or heartbeat_at < silent_since:
                    dead.add(node_id)
        return dead

    async def _resume(self, run: RunRecord, alert_id: str) -> None:
        app = self.app_for(run)
        app.store.recover_orphans(time.time(), owner_is_dead)
        by_id = {c.id: c for c in app.config.channels}
        configs = [by_id[c] for c in app.store.alert(alert_id).channels if c in by_id]
        await deliver(app.store, configs, run.mode, alert_ids=(alert_id,))

    # --- jobs ------------------------------------------------------------------------

    async def fire(self, run_id: str, step_id: str, occurrence: int) -> Fired | None:
        """Fire one occurrence (at most once, whoever calls), then schedule what comes next."""
        if not self.still_leading():
            # The job left the store when it was taken; its row is still "scheduled", so the leader's
            # next sync adds it again and fires it there.
            log.warning("job %s not run: this host does not lead the scheduler", job_id(run_id, step_id, occurrence))
            return None
        store = run_store(self.app)
        run = store.find_run(run_id)
        if run is None:
            log.warning("job for unknown run %s: ignored", run_id)
            return None
        runbook = self.runbook_for(run)
        step = runbook.step(step_id)
        if step is None:
            log.warning("job for unknown step %s of run %s: ignored", step_id, run_id)
            return None
        fired = await fire_occurrence(self.app_for(run), runbook, run, step, occurrence, owner=self.owner,
                                      plan_mode=run.mode, deliver_mode=run.mode, clock=Clock())
        if fired.state != "taken":
            self.fired.append(fired)
            alert = f" · alert {fired.alert_id}" if fired.alert_id else ""
            self.report(f"{run_id}: {step_id} #{occurrence} {fired.state}{alert} · {fired.detail or ''}")
        self.sync(store.run(run_id))
        return fired

    def _on_missed(self, event: Any) -> None:
        parsed = parse_job_id(str(event.job_id))
        if parsed is None:
            return
        run_id, step_id, occurrence = parsed
        due = event.scheduled_run_time.timestamp()
        late = time.time() - due
        detail = (f"missed: due {iso_seconds(due, self.app.config.timezone)}, no scheduler ran until "
                  f"{format_duration(late)} later, beyond the {format_duration(self.grace_s)} grace window; "
                  "not sent")
        store = run_store(self.app)
        if store.move_run_step(run_id, step_id, occurrence, from_states=("scheduled",), to_state="missed",
                               detail=detail):
            self.missed.append(parsed)
            self.report(f"MISSED {run_id}: {step_id} #{occurrence}: {detail}")
        run = store.find_run(run_id)
        if run is not None:
            self.sync(run)

    def _on_submitted(self, event: Any) -> None:
        self._running.add(str(event.job_id))

    def _on_done(self, event: Any) -> None:
        self._running.discard(str(event.job_id))

    def _on_error(self, event: Any) -> None:
        log.error("job %s raised %r", event.job_id, event.exception)
        self.report(f"ERROR in job {event.job_id}: {event.exception!r}")
