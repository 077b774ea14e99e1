"""The scheduler leader: one host executes the schedule kept in ``run_steps``; another takes over, schedule and all.

Leadership is a lease on the ``leadership`` table, the same on SQLite and
PostgreSQL: one host leads at a time; a leader whose process is gone from this
host is replaced at the next poll; a leader that stalls stops executing by its
own monotonic clock before its lease runs out for anyone else. Whatever
happens, a scheduled step fires exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.app.context import App, load
from broadcaster.app.runbook import host, stop_run
from broadcaster.cli import main
from broadcaster.errors import StoreUnavailable
from broadcaster.runbooks.scheduler import LEAD_S
from broadcaster.states import StepState
from broadcaster.store import Store, open_store, upgrade_database
from broadcaster.store.leadership import SCHEDULER_LEAD
from broadcaster.store.records import RunStepRow
from broadcaster.timefmt import iso_seconds
from tests.engine.providers import SECRETS, Providers
from tests.runbooks.conftest import TEMPLATES, closure, dead_owner, fast_channels, make_run
from tests.support import Reader, read, token_file, write_config

FIRE = ["fire", "road_closure", "--use-examples", "--dry-run", "--channels", "x-authority,telegram-authority"]
DEADLINE_S = 30.0  # generous: only a timeout, never a measurement
QUICK = {"poll_s": 0.05}  # hosts in this process look at the schedule twenty times a second

NewApp = Callable[[], Awaitable[App]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite file or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    url: str = request.getfixturevalue("pg_url")
    await upgrade_database(url)
    return url


@pytest.fixture
def pg_database(pg_url: str) -> str:
    asyncio.run(upgrade_database(pg_url))
    return pg_url


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path, fast_channels(tmp_path), templates=str(TEMPLATES))


@pytest.fixture
async def new_app(config_path: Path, database: str) -> AsyncIterator[NewApp]:
    """Apps over one database, each with its own connection (or pool), as separate nodes would have."""
    made: list[App] = []

    async def make() -> App:
        config, catalogue, _ = load(str(config_path), database)
        made.append(App(config=config, catalogue=catalogue, store=await open_store(database), database=database))
        return made[-1]

    yield make
    for app in made:
        await app.store.close()


def command(config: Path, database: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "broadcaster", "--config", str(config), "--db", database, *args]


async def other_process(config: Path, database: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``broadcaster ARGS`` in a process of its own (off the event loop, so the hosts here keep polling)."""
    return await asyncio.to_thread(subprocess.run, command(config, database, *args), capture_output=True,
                                   text=True, timeout=DEADLINE_S, check=False)


async def alert_count(store: Store) -> int:
    return int((await store.db.execute("SELECT COUNT(*) AS n FROM alerts")).scalar())


async def steps(app: App, run_id: str) -> dict[tuple[str, int], RunStepRow]:
    return {(r.step_id, r.occurrence): r for r in await app.store.runs.steps(run_id)}


async def until(what: str, done: Callable[[], bool]) -> None:
    """Let the loop run until ``done()``; fail after the generous deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def iso(app: App, ts: float | None) -> str:
    assert ts is not None
    return iso_seconds(ts, app.config.timezone)


# --- the schedule is in the database -------------------------------------------------------------------


async def test_what_a_host_schedules_every_process_sees_a_restart_keeps_and_a_cancel_never_fires(
    tmp_path: Path, config_path: Path, database: str, new_app: NewApp
) -> None:
    app = await new_app()
    first = host(app, **QUICK)
    await first.start()
    try:
        soon = make_run(app.config, closure(tmp_path, "3s"))
        later = make_run(app.config, closure(tmp_path, "1h"))
        for run in (soon, later):
            await first.start_run(run)
        soon_job, later_job = f"{soon.id}/closure/0", f"{later.id}/closure/0"
        assert sorted(first.jobs()) == sorted([soon_job, later_job])  # its timers
    finally:
        await first.shutdown()  # the host stops (a restart, or another node takes over)
    assert not first.is_leader and await app.store.leadership.holder(SCHEDULER_LEAD) is None

    # Another process sees the schedule: it is rows of run_steps, not a host's memory.
    listed = await other_process(config_path, database, "schedule", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = orjson.loads(listed.stdout)["jobs"]
    assert [(j["job_id"], j["run_id"], j["kind"], j["mode"]) for j in jobs] == [
        (soon_job, soon.id, "runbook", "dry-run"), (later_job, later.id, "runbook", "dry-run")]  # next first
    due = (await steps(app, soon.id))[("closure", 0)].due_at
    due_later = (await steps(app, later.id))[("closure", 0)].due_at
    assert [j["next_run"] for j in jobs] == [iso(app, due), iso(app, due_later)]

    # The host comes back (another connection, as another node would): it rebuilds its timers from the rows.
    second = host(await new_app(), **QUICK)
    await second.start()
    serving = asyncio.create_task(second.serve(run_id=later.id))
    try:
        assert sorted(second.jobs()) == sorted([soon_job, later_job])

        # One job cancelled from another process before it is due: the leader drops its timer; it never fires.
        cancelled = await other_process(config_path, database, "schedule", "cancel", soon_job)
        assert cancelled.returncode == 0, cancelled.stderr
        assert "will not fire" in cancelled.stdout
        await until("the leader to drop the cancelled job's timer", lambda: soon_job not in second.jobs())
        assert second.jobs() == [later_job]
        assert due is not None
        await asyncio.sleep(max(0.0, due - time.time()) + 1.0)  # its time comes and goes while the leader runs
        row = (await steps(app, soon.id))[("closure", 0)]
        assert (row.state, row.detail, row.alert_id) == (StepState.SKIPPED, "cancelled by an operator", None)
        assert second.fired == [] and await alert_count(app.store) == 0
        assert (await steps(app, later.id))[("closure", 0)].state == StepState.SCHEDULED  # the other one waits
        await stop_run(app, later.id, "test over")
        stopped = await asyncio.wait_for(serving, timeout=DEADLINE_S)
        assert stopped is not None and stopped.state == "stopped"
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await second.shutdown()
    assert first.fired == [] and second.fired == [] and await alert_count(app.store) == 0


def test_schedule_commands_on_postgresql(
    pg_database: str, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = ["--config", str(config_path), "--db", pg_database]
    assert main([*cli, *FIRE, "--at", "+2h", "--json"]) == 0
    schedule_id = orjson.loads(capsys.readouterr().out)["schedule_id"]
    assert main([*cli, "schedule", "list", "--json"]) == 0
    (job,) = orjson.loads(capsys.readouterr().out)["jobs"]
    assert (job["job_id"], job["kind"], job["mode"]) == (f"{schedule_id}/fire/0", "schedule", "dry-run")
    assert main([*cli, "schedule", "cancel", schedule_id]) == 0
    assert "1 job(s) removed" in capsys.readouterr().out
    db = Reader(pg_database)
    assert db.run(schedule_id).state == "stopped"
    assert [(r.step_id, r.state) for r in db.run_steps(schedule_id)] == [("fire", StepState.SKIPPED)]
    assert main([*cli, "schedule", "list", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["jobs"] == []
    assert db.alerts() == []


# --- leadership ----------------------------------------------------------------------------------


async def test_one_host_leads_and_a_clean_stop_hands_over_at_once(new_app: NewApp) -> None:
    first, second = host(await new_app(), **QUICK), host(await new_app(), **QUICK)
    await first.start(paused=True)
    await second.start(paused=True)
    try:
        leadership = second.store.leadership
        assert (first.is_leader, second.is_leader) == (True, False)
        assert await leadership.holder(SCHEDULER_LEAD) == first.owner
        for _ in range(3):  # renewing keeps the lead; polling never takes it from a live leader
            assert (await first.poll(), await second.poll()) == (True, False)
            assert (first.leads(), second.leads()) == (True, False)
        assert await leadership.holder(SCHEDULER_LEAD) == first.owner
        await first.shutdown()  # gives the lead up: the next host to poll takes it, without waiting for the lease
        assert await leadership.holder(SCHEDULER_LEAD) is None
        assert await second.poll() and second.leads()
        assert await leadership.holder(SCHEDULER_LEAD) == second.owner
    finally:
        await first.shutdown()
        await second.shutdown()


async def test_a_leader_whose_process_died_on_this_host_is_replaced_at_the_next_poll(new_app: NewApp) -> None:
    app = await new_app()
    leadership = app.store.leadership
    lines: list[str] = []
    successor = host(app, report=lines.append, **QUICK)
    # A leader on another machine with an hour-long lease: its pid means nothing here, so only its lease tells.
    elsewhere = "another-machine:4242:beef0001"
    assert await leadership.try_lead(SCHEDULER_LEAD, elsewhere, 3600)
    await successor.start(paused=True)
    try:
        assert not successor.is_leader and not await successor.poll()
        assert await leadership.holder(SCHEDULER_LEAD) == elsewhere
        assert any("another node leads the scheduler" in line for line in lines)
        # A leader on this host whose process is gone, also with an hour-long lease: replaced at the next poll.
        await leadership.release(SCHEDULER_LEAD, elsewhere)
        gone = dead_owner()
        assert await leadership.try_lead(SCHEDULER_LEAD, gone, 3600)
        assert await leadership.holder(SCHEDULER_LEAD) == gone
        assert await successor.poll() and successor.leads()
        assert await leadership.holder(SCHEDULER_LEAD) == successor.owner
        assert any(line.startswith(f"this host ({successor.owner}) leads the scheduler") for line in lines)
    finally:
        await successor.shutdown()


class StallingClock:
    """A monotonic clock a test can make jump, as a process frozen for a while finds it on waking."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skew

    def stall(self, seconds: float) -> None:
        self.skew += seconds


async def test_a_leader_that_stalls_past_its_lease_stops_executing_and_another_takes_over(
    tmp_path: Path, new_app: NewApp
) -> None:
    lease = {"lead_s": 2.0, "lead_margin_s": 0.5, **QUICK}  # short, so the other host takes over in ~2 s
    lines: list[str] = []
    clock = StallingClock()
    app = await new_app()
    first = host(app, report=lines.append, monotonic=clock, **lease)
    second = host(await new_app(), report=lines.append, **lease)
    await first.start()
    await second.start()
    try:
        assert (first.is_leader, second.is_leader) == (True, False)
        # The leader freezes (SIGSTOP, a GC pause, a frozen VM) and wakes with its lease run out by its own clock,
        # though not yet by the database's: nobody else may lead yet, and neither may it.
        clock.stall(10.0)
        run = make_run(app.config, closure(tmp_path))
        await first.start_run(run)  # its timer for the step is due at once
        await until("the stalled leader to step down", lambda: not first.is_leader)
        assert await second.store.leadership.holder(SCHEDULER_LEAD) == first.owner  # its lease still stands
        assert first.fired == [] and not first.leads()
        key = (run.id, "closure", 0)
        assert (await second.store.runs.steps(run.id))[0].state == StepState.SCHEDULED  # it fired nothing
        assert any("no longer leads the scheduler (its lease was not renewed in time" in line for line in lines)
        assert await first._job(*key) is None  # any timer it still has executes nothing

        # Once the lease has run out by the database's clock, the other host takes over and fires the step.
        final = await asyncio.wait_for(second.serve(run_id=run.id), timeout=DEADLINE_S)
        assert final is not None and final.state == "finished"
        assert second.is_leader and await second.store.leadership.holder(SCHEDULER_LEAD) == second.owner
        # The stalled host wakes up: it finds another leading, and stays a follower.
        assert not await first.poll() and not first.is_leader
        assert await first._job(*key) is None
    finally:
        await first.shutdown()
        await second.shutdown()
    assert first.fired == [] and [f.state for f in second.fired] == ["fired"]
    (row,) = await second.store.runs.steps(run.id)
    assert (row.state, row.owner) == (StepState.FIRED, second.owner)
    assert await alert_count(second.store) == 1
    assert any(line.startswith(f"this host ({second.owner}) leads the scheduler") for line in lines)


class Cut:
    """Cuts one store off from its database (a network cut) while its process lives on: every call fails."""

    def __init__(self, store: Store) -> None:
        self.db = store.db
        self.real = {name: getattr(self.db, name) for name in ("execute", "executemany", "transaction")}

    def __enter__(self) -> Cut:
        def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable(f"lost the connection to the database ({self.db.where}): cut by the test")

        for name in self.real:
            setattr(self.db, name, unreachable)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, method in self.real.items():
            setattr(self.db, name, method)


async def test_a_leader_cut_off_from_the_database_stops_executing_and_the_other_takes_over(
    tmp_path: Path, new_app: NewApp
) -> None:
    lease = {"lead_s": 2.0, "lead_margin_s": 0.5, **QUICK}  # short, so the other host takes over in ~2 s
    lines: list[str] = []
    app = await new_app()
    first = host(app, report=lines.append, **lease)
    second = host(await new_app(), report=lines.append, **lease)
    await first.start()
    await second.start()
    try:
        assert (first.is_leader, second.is_leader) == (True, False)
        run = make_run(app.config, closure(tmp_path, "1s"))
        await first.start_run(run)  # the leader holds the step's timer
        with Cut(first.store):  # its process lives on; it can neither renew its lease nor fire
            serving = asyncio.gather(first.serve(run_id=run.id), second.serve(run_id=run.id))
            await until("the other host to fire the step", lambda: bool(second.fired))
            assert not first.is_leader and first.fired == []
        # The database is back: the cut-off host finds another leading, and the run over.
        done = await asyncio.wait_for(serving, timeout=DEADLINE_S)
        assert [r.state for r in done if r is not None] == ["finished", "finished"]
        assert (first.is_leader, second.is_leader) == (False, True)
        assert await second.store.leadership.holder(SCHEDULER_LEAD) == second.owner
    finally:
        await first.shutdown()
        await second.shutdown()
    assert first.fired == [] and [f.state for f in second.fired] == ["fired"]
    (row,) = await second.store.runs.steps(run.id)
    assert (row.state, row.owner) == (StepState.FIRED, second.owner)
    assert await alert_count(second.store) == 1
    assert any("no longer leads the scheduler (the database failed" in line for line in lines), lines
    assert any(line.startswith(f"this host ({second.owner}) leads the scheduler") for line in lines)


async def test_two_hosts_one_leader_and_a_scheduled_fire_fires_once(
    config_path: Path, database: str, new_app: NewApp
) -> None:
    first, second = host(await new_app(), **QUICK), host(await new_app(), **QUICK)
    await first.start()
    await second.start()
    try:
        assert (first.is_leader, second.is_leader) == (True, False)
        assert await second.store.leadership.holder(SCHEDULER_LEAD) == first.owner
        scheduled = await other_process(config_path, database, *FIRE, "--at", "+1s", "--json")
        assert scheduled.returncode == 0, scheduled.stderr
        schedule_id = orjson.loads(scheduled.stdout)["schedule_id"]
        # A follower's timer (if it had one) executes nothing.
        assert await second._job(schedule_id, "fire", 0) is None
        both = asyncio.gather(first.serve(run_id=schedule_id), second.serve(run_id=schedule_id))
        done = await asyncio.wait_for(both, timeout=DEADLINE_S)
        assert [r.state for r in done if r is not None] == ["finished", "finished"]
    finally:
        await first.shutdown()
        await second.shutdown()
    assert (first.is_leader, second.is_leader) == (False, False)
    assert [f.state for f in first.fired] == ["fired"] and second.fired == []
    (row,) = await first.store.runs.steps(schedule_id)
    assert (row.state, row.owner) == (StepState.FIRED, first.owner)
    assert await alert_count(first.store) == 1


# --- takeover between processes --------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], Any], procs: list[subprocess.Popen[bytes]], logs: Path) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if any(p.poll() is not None and p.returncode != -signal.SIGKILL for p in procs):
            break
        time.sleep(0.05)
    output = "\n".join(f"--- {p.name}\n{p.read_text()}" for p in sorted(logs.glob("host-*.log")))
    pytest.fail(f"timed out waiting for {what}\n{output}")


class Hosts:
    """``broadcaster schedule run`` processes on one database, each logging to ``host-NAME.log``."""

    def __init__(self, config: Path, database: str, logs: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.database, self.logs = config, database, logs
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.reader = Reader(database)

    def start(self, name: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"host-{name}.log").open("wb") as out:
            # Started as from a shell: Ctrl-C (SIGINT) at its default, whatever the test process inherited or
            # set (an ignored SIGINT would be inherited, and the host would never hear the Ctrl-C it is sent).
            proc = subprocess.Popen(command(self.config, self.database, "schedule", "run"), stdout=out,
                                    stderr=subprocess.STDOUT, env=self.env,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"host-{name}.log").read_text(encoding="utf-8", errors="replace")

    def leader(self) -> str | None:
        return read(self.database, lambda store: store.leadership.holder(SCHEDULER_LEAD))

    def lease(self) -> tuple[str, float, float]:
        """The scheduler lease as the database has it: holder, lease_until and since (the database's clock)."""

        async def fetch(store: Store) -> tuple[str, float, float]:
            row = (await store.db.execute("SELECT holder, lease_until, since FROM leadership WHERE name = ?",
                                          (SCHEDULER_LEAD,))).one()
            assert row is not None, "nobody holds the scheduler lease"
            return str(row["holder"]), float(row["lease_until"]), float(row["since"])

        return read(self.database, fetch)

    def up(self) -> set[int]:
        return {n.pid for n in read(self.database, lambda store: store.nodes.recent(60))
                if n.role == "scheduler" and n.stopped_at is None}

    def wait(self, what: str, probe: Callable[[], Any]) -> Any:
        return wait_for(what, probe, self.procs, self.logs)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()


@pytest.fixture
def hosts(config_path: Path, pg_database: str, tmp_path: Path) -> Iterator[Hosts]:
    running = Hosts(config_path, pg_database, tmp_path, env={**os.environ, **SECRETS})
    try:
        yield running
    finally:
        running.stop()


def pid_of(owner: str) -> int:
    return int(owner.split(":")[1])


@pytest.mark.slow
def test_leader_takeover_keeping_the_schedule(
    hosts: Hosts, config_path: Path, pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = ["--config", str(config_path), "--db", pg_database]
    db = hosts.reader
    first = hosts.start("first")
    leader = hosts.wait("a leader", hosts.leader)
    assert pid_of(leader) == first.pid
    second = hosts.start("second")
    hosts.wait("the second host", lambda: second.pid in hosts.up())

    assert main([*cli, *FIRE, "--at", "+3s", "--json"]) == 0
    schedule_id = orjson.loads(capsys.readouterr().out)["schedule_id"]
    first.send_signal(signal.SIGKILL)  # before the step is due: the schedule must outlive its leader
    killed = time.monotonic()
    first.wait()
    assert db.run_steps(schedule_id)[0].state == "scheduled"
    holder, lease_until, _ = hosts.lease()
    assert holder == leader

    # Its lease still stands by the database's clock, but its process is gone from this host: the next poll
    # replaces it.
    new_leader = hosts.wait("a new leader", lambda: (hosts.leader() or leader) != leader and hosts.leader())
    took_over = time.monotonic() - killed
    assert pid_of(new_leader) == second.pid
    holder, _, since = hosts.lease()
    assert holder == new_leader and since < lease_until  # taken over before the dead leader's lease ran out
    row = hosts.wait("the step to fire", lambda: next((r for r in db.run_steps(schedule_id) if r.done), None))
    fired = time.monotonic() - killed
    with capsys.disabled():  # for the record only (pytest -s shows it); never asserted
        print(f"\ntakeover {took_over:.2f} s after SIGKILL; step fired {fired:.2f} s after it")
    assert (row.state, row.owner) == ("fired", new_leader)
    (alert,) = db.alerts()
    deliveries = db.deliveries(alert.id)
    assert deliveries and {d.state for d in deliveries} == {"sent"}
    second.send_signal(signal.SIGTERM)  # a service manager's stop: it keeps nothing half done
    assert second.wait(timeout=DEADLINE_S) == 0
    assert len(db.alerts()) == 1
    assert hosts.leader() is None  # it gave the lead up as it stopped: the next host leads at once
    assert second.pid not in hosts.up()  # and signed its node off


def attempt_nodes(database: str, alert_id: str) -> set[str]:
    """The nodes that made the attempts of ``alert_id``."""

    async def fetch(store: Store) -> set[str]:
        rows = await store.db.execute("SELECT DISTINCT a.node AS node FROM attempts a"
                                      " JOIN deliveries d ON d.id = a.delivery_id WHERE d.alert_id = ?", (alert_id,))
        return {r["node"] for r in rows.rows}

    return read(database, fetch)


@pytest.mark.slow
def test_a_leader_stalled_past_its_lease_while_a_step_is_due_fires_it_exactly_once(
    hosts: Hosts, tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGSTOP the leading `schedule run` while a live step falls due, for longer than its lease; SIGCONT it.

    The other host takes over once the lease has run out by the database's
    clock and fires the step; the woken leader, its lease run out by its own
    clock, executes nothing. One alert, and one set of deliveries at the fakes.
    """
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    db = hosts.reader
    with Providers(tmp_path, recipients=3) as p:
        hosts.config = p.config  # the hosts send to these fakes
        cli = ["--config", str(p.config), "--db", pg_database, "--token-file",
               str(token_file(tmp_path, pg_database, "officer"))]
        first = hosts.start("first")
        leader = hosts.wait("a leader", hosts.leader)
        assert pid_of(leader) == first.pid
        second = hosts.start("second")
        hosts.wait("the second host to follow", lambda: "another node leads the scheduler" in hosts.log("second"))

        assert main([*cli, "fire", "road_closure", "--use-examples", "--live", "--yes", "--at", "+4s",
                     "--json"]) == 0
        schedule_id = orjson.loads(capsys.readouterr().out)["schedule_id"]
        (due,) = [r.due_at for r in db.run_steps(schedule_id)]
        assert due is not None
        time.sleep(max(0.0, due - time.time() - 1.5))  # the leader has polled since, and holds a timer for it
        assert db.run_steps(schedule_id)[0].state == StepState.SCHEDULED and hosts.leader() == leader
        first.send_signal(signal.SIGSTOP)  # the step falls due while the leader is frozen
        stopped = time.monotonic()
        _, lease_until, _ = hosts.lease()  # its last renewal: nobody else may lead before this
        try:
            new_leader = hosts.wait("the other host to take over",
                                    lambda: (hosts.leader() or leader) != leader and hosts.leader())
            row = hosts.wait("the step to fire", lambda: next((r for r in db.run_steps(schedule_id) if r.done),
                                                              None))
            hosts.wait("its deliveries", lambda: len(p.twilio.messages) >= len(p.phones))
            time.sleep(max(0.0, LEAD_S + 1.0 - (time.monotonic() - stopped)))  # frozen for longer than a lease
        finally:
            first.send_signal(signal.SIGCONT)
        stall = time.monotonic() - stopped
        assert stall > LEAD_S
        assert pid_of(new_leader) == second.pid
        holder, _, since = hosts.lease()
        assert holder == new_leader and since >= lease_until  # only once the frozen leader's lease had run out
        assert (row.state, row.owner) == (StepState.FIRED, new_leader)
        # The woken leader finds, by its own clock or by the lease table, that it leads no more.
        hosts.wait("the woken leader to step down", lambda: "no longer leads the scheduler" in hosts.log("first"))
        time.sleep(1.0)  # whatever the woken host would still send would arrive now
        assert first.poll() is None and second.poll() is None, "a host exited"
        assert hosts.leader() == new_leader

        (alert,) = db.alerts()
        assert [(r.step_id, r.state, r.alert_id) for r in db.run_steps(schedule_id)] == [
            ("fire", StepState.FIRED, alert.id)]
        deliveries = db.deliveries(alert.id)
        assert deliveries and {d.state for d in deliveries} == {"sent"}
        assert {pid_of(node) for node in attempt_nodes(pg_database, alert.id)} == {second.pid}
        # Every channel got the alert exactly once: did every phone get it exactly once?
        assert [t["text"][:7] for t in p.x.tweets] == ["إغلاق \u2067", "\u2066Sheikh"]
        assert len(p.telegram.sent) == 1
        assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)
        assert len(p.webhook.deliveries) == 1
        with capsys.disabled():  # for the record only (pytest -s shows it); never asserted
            print(f"\nleader pid {first.pid} stopped for {stall:.1f} s; the step fired by {new_leader}; "
                  f"{len(db.alerts())} alert")
        for proc in (first, second):
            proc.send_signal(signal.SIGINT)
        assert [proc.wait(timeout=DEADLINE_S) for proc in (first, second)] == [130, 130]
    assert hosts.leader() is None
