"""The scheduler leader: one host executes the shared job store; another takes over, schedule and all."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from broadcaster.runbooks.jobstore import DatabaseJobStore
from broadcaster.runbooks.leader import PgLeadership, scheduler_leader
from broadcaster.runbooks.store import run_store
from broadcaster.store.common import SqlStore

from broadcaster.app import App
from broadcaster.channels.registry import KINDS
from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.runbooks.scheduler import JOB_FUNC, Host
from broadcaster.store import open_store, upgrade_database
from broadcaster.store.postgres import PostgresStore
from broadcaster.templates.catalogue import Catalogue
from tests.runbooks.conftest import TEMPLATES, fast_channels
from tests.support import write_config

FIRE = ["fire", "road_closure", "--use-examples", "--dry-run", "--channels", "x-authority,telegram-authority"]
DEADLINE_S = 30.0  # generous: only a timeout, never a measurement


def migrated(url: str) -> str:
    upgrade_database(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return migrated(request.getfixturevalue("pg_url"))


@pytest.fixture
def pg_database(pg_url: str) -> str:
    return migrated(pg_url)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path, fast_channels(tmp_path), templates=str(TEMPLATES))


@pytest.fixture
def make_app(config_path: Path) -> Iterator[Callable[[str], App]]:
    """Apps over one database, each with its own connection, as separate nodes would have.

    Built directly rather than with load_app, so a command run in-process does not close them.
    """
    made: list[App] = []

    def make(database: str) -> App:
        config = load_config(config_path, KINDS)
        made.append(App(config=config, catalogue=Catalogue(config.templates_dir), database=database))
        return made[-1]

    yield make
    for app in made:
        app.close()


def cli(app: App, *args: str) -> list[str]:
    return ["--config", str(app.config.path), "--db", app.database, *args]


def schedule_fire(app: App, capsys: pytest.CaptureFixture[str], at: str) -> str:
    """``broadcaster fire … --at AT`` from "another process"; returns the schedule (run) id."""
    code = main(cli(app, *FIRE, "--at", at, "--json"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    schedule_id: str = orjson.loads(captured.out)["schedule_id"]
    return schedule_id


def alert_count(store: SqlStore) -> int:
    return int(store.db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])


# --- the job store -------------------------------------------------------------------------------


def make_job(scheduler: Any, job_id: str, when: datetime | None) -> Any:
    return Job(scheduler, id=job_id, func=JOB_FUNC, trigger=DateTrigger(when or datetime.now(UTC), timezone=UTC),
               executor="default", args=["run-x", job_id, 0], kwargs={}, name=job_id, misfire_grace_time=300,
               coalesce=True, max_instances=1, next_run_time=when)


def test_job_store_contract(database: str) -> None:
    first, second = open_store(database), open_store(database)
    try:
        scheduler = BackgroundScheduler(timezone=UTC)
        jobs = DatabaseJobStore(first.db)  # type: ignore[attr-defined]
        jobs.start(scheduler, "default")
        t = datetime.fromtimestamp(round(time.time()), UTC)
        assert (jobs.get_all_jobs(), jobs.get_next_run_time(), jobs.lookup_job("a")) == ([], None, None)

        jobs.add_job(make_job(scheduler, "a", t + timedelta(seconds=10)))
        jobs.add_job(make_job(scheduler, "b", t + timedelta(seconds=5)))
        jobs.add_job(make_job(scheduler, "paused", None))
        with pytest.raises(ConflictingIdError):
            jobs.add_job(make_job(scheduler, "a", t))

        found = jobs.lookup_job("a")
        assert (found.id, found.args, found.next_run_time) == ("a", ["run-x", "a", 0], t + timedelta(seconds=10))
        assert found._scheduler is scheduler and found._jobstore_alias == "default"
        assert jobs.get_next_run_time() == t + timedelta(seconds=5)
        assert [j.id for j in jobs.get_all_jobs()] == ["b", "a", "paused"]  # a paused job comes last
        assert [j.id for j in jobs.get_due_jobs(t + timedelta(seconds=7))] == ["b"]

        found._modify(next_run_time=t + timedelta(seconds=1))
        jobs.update_job(found)
        assert [j.id for j in jobs.get_due_jobs(t + timedelta(seconds=7))] == ["a", "b"]
        with pytest.raises(JobLookupError):
            jobs.update_job(make_job(scheduler, "nobody", t))

        # The schedule is in the database: another connection (another node) sees the same jobs.
        other = DatabaseJobStore(second.db)  # type: ignore[attr-defined]
        other.start(scheduler, "default")
        assert [j.id for j in other.get_all_jobs()] == ["a", "b", "paused"]
        other.remove_job("b")
        with pytest.raises(JobLookupError):
            jobs.remove_job("b")

        # A row that no longer unpickles is dropped, not retried forever.
        first.db.execute("INSERT INTO scheduler_jobs VALUES (?, ?, ?)",  # type: ignore[attr-defined]
                         ("broken", t.timestamp(), b"not a pickle"))
        assert [j.id for j in jobs.get_all_jobs()] == ["a", "paused"]
        assert first.db.execute(  # type: ignore[attr-defined]
            "SELECT COUNT(*) FROM scheduler_jobs WHERE id = 'broken'").fetchone()[0] == 0

        jobs.remove_all_jobs()
        assert other.get_all_jobs() == [] and other.get_next_run_time() is None
    finally:
        first.close()
        second.close()


def test_schedule_commands_on_postgresql(
    pg_database: str, make_app: Callable[[str], App], capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(pg_database)
    schedule_id = schedule_fire(app, capsys, "+2h")
    assert main(cli(app, "schedule", "list", "--json")) == 0
    (job,) = orjson.loads(capsys.readouterr().out)["jobs"]
    assert (job["job_id"], job["kind"], job["mode"]) == (f"{schedule_id}/fire/0", "schedule", "dry-run")
    assert main(cli(app, "schedule", "cancel", schedule_id)) == 0
    assert "1 job(s) removed" in capsys.readouterr().out
    assert run_store(app).run(schedule_id).state == "stopped"
    assert run_store(app).db.execute("SELECT COUNT(*) FROM scheduler_jobs").fetchone()[0] == 0


# --- leadership ----------------------------------------------------------------------------------


def test_pg_leadership_is_exclusive_and_goes_with_its_session(pg_database: str) -> None:
    a, b = open_store(pg_database), open_store(pg_database)
    assert isinstance(a, PostgresStore) and isinstance(b, PostgresStore)
    first, second = PgLeadership(a.bridge, "host-a:1:aa"), PgLeadership(b.bridge, "host-b:2:bb")
    try:
        assert first.try_acquire() and first.held()
        assert not second.try_acquire() and not second.held()
        assert scheduler_leader(b) == "host-a:1:aa"
        # The leader's session ends (its process died, say): the lock goes with it.
        a.db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'host-a:%'")
        assert not first.held()
        deadline = time.monotonic() + DEADLINE_S  # the lock is freed once the backend process has exited
        while not second.try_acquire() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second.held() and scheduler_leader(a) == "host-b:2:bb"
        second.release()
        assert scheduler_leader(a) is None and first.try_acquire()
    finally:
        first.release()
        second.release()
        a.close()
        b.close()


async def test_on_sqlite_every_host_leads(tmp_path: Path, make_app: Callable[[str], App]) -> None:
    database = str(tmp_path / "one.db")
    hosts = [Host(make_app(database)), Host(make_app(database))]
    for host in hosts:
        await host.start(paused=True)
    try:
        assert [h.is_leader for h in hosts] == [True, True]
        assert scheduler_leader(hosts[0].app.store) is None
    finally:
        for host in hosts:
            await host.shutdown()


async def test_two_hosts_one_leader_and_a_scheduled_fire_fires_once(
    pg_database: str, make_app: Callable[[str], App], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = Host(make_app(pg_database), poll_s=0.05), Host(make_app(pg_database), poll_s=0.05)
    await first.start()
    await second.start()
    try:
        assert (first.is_leader, second.is_leader) == (True, False)
        assert scheduler_leader(second.app.store) == first.owner
        schedule_id = schedule_fire(first.app, capsys, "+1s")
        both = asyncio.gather(first.serve(run_id=schedule_id), second.serve(run_id=schedule_id))
        done = await asyncio.wait_for(both, timeout=DEADLINE_S)
        assert [r.state for r in done if r is not None] == ["finished", "finished"]
    finally:
        await first.shutdown()
        await second.shutdown()
    assert (first.is_leader, second.is_leader) == (False, False)
    assert [f.state for f in first.fired] == ["fired"] and second.fired == []
    (row,) = run_store(first.app).run_steps(schedule_id)
    assert (row.state, row.owner) == ("fired", first.owner)
    assert alert_count(run_store(first.app)) == 1


async def test_a_leader_that_loses_its_lock_stops_and_the_other_takes_over(
    pg_database: str, make_app: Callable[[str], App], capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []
    first = Host(make_app(pg_database), poll_s=0.05, report=lines.append)
    second = Host(make_app(pg_database), poll_s=0.05, report=lines.append)
    await first.start()
    await second.start()
    try:
        schedule_id = schedule_fire(first.app, capsys, "+2s")  # in the job store while the first one leads
        # The leader's lock connection dies (a network cut, an administrator) while its process lives on.
        store = run_store(second.app)
        store.db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE split_part(application_name, ' ', 1) = ?", (first.owner,))
        both = asyncio.gather(first.serve(run_id=schedule_id), second.serve(run_id=schedule_id))
        await asyncio.wait_for(both, timeout=DEADLINE_S)
        assert (first.is_leader, second.is_leader) == (False, True)
        assert scheduler_leader(store) == second.owner
    finally:
        await first.shutdown()
        await second.shutdown()
    assert first.fired == [] and [f.state for f in second.fired] == ["fired"]
    (row,) = run_store(second.app).run_steps(schedule_id)
    assert (row.state, row.owner) == ("fired", second.owner)
    assert alert_count(store) == 1
    assert any("no longer leads the scheduler" in line for line in lines)
    assert any(line.startswith(f"this host ({second.owner}) leads the scheduler") for line in lines)


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


@pytest.mark.slow
def test_leader_takeover_keeping_the_schedule(
    pg_database: str, make_app: Callable[[str], App], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = make_app(pg_database)
    store = run_store(app)
    procs: list[subprocess.Popen[bytes]] = []

    def start_host(name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"host-{name}.log").open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "broadcaster", *cli(app, "schedule", "run")],
                                    stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    def hosts_up() -> set[int]:
        return {n.pid for n in store.nodes(time.time() - 60) if n.role == "scheduler" and n.stopped_at is None}

    try:
        first = start_host("first")
        leader = wait_for("a leader", lambda: scheduler_leader(store), procs, tmp_path)
        assert leader.split(":")[1] == str(first.pid)
        second = start_host("second")
        wait_for("the second host", lambda: second.pid in hosts_up(), procs, tmp_path)

        schedule_id = schedule_fire(app, capsys, "+3s")
        first.send_signal(signal.SIGKILL)  # before the step is due: the schedule must outlive its leader
        killed = time.monotonic()
        first.wait()
        assert store.run_steps(schedule_id)[0].state == "scheduled"

        # The server ends the killed leader's session (and frees its lock) as soon as it sees the socket close.
        new_leader = wait_for("a new leader", lambda: scheduler_leader(store) not in (None, leader) and
                              scheduler_leader(store), procs, tmp_path)
        took_over = time.monotonic() - killed
        assert new_leader.split(":")[1] == str(second.pid)
        row = wait_for("the step to fire", lambda: next((r for r in store.run_steps(schedule_id) if r.done), None),
                       procs, tmp_path)
        fired = time.monotonic() - killed
        with capsys.disabled():  # for the record only (pytest -s shows it); never asserted
            print(f"\ntakeover {took_over:.2f} s after SIGKILL; step fired {fired:.2f} s after it")
        assert (row.state, row.owner) == ("fired", new_leader)
        assert alert_count(store) == 1
        (alert,) = app.store.alerts()
        assert {d.state for d in app.store.deliveries(alert.id)} == {"sent"}
        second.send_signal(signal.SIGINT)  # a clean stop: it keeps nothing half done
        assert second.wait(timeout=DEADLINE_S) == 130
        assert alert_count(store) == 1
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
