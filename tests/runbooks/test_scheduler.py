"""`broadcaster runbook run`: scheduled steps that survive restarts and never fire twice.

The schedule is the ``scheduled`` rows of ``run_steps``; the leading host keeps
one in-memory timer per row (``Host.jobs()``) and rebuilds them every poll.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.app.context import App, open_app
from broadcaster.app.runbook import host
from broadcaster.cli import main
from broadcaster.errors import StoreUnavailable
from broadcaster.runbooks.model import Runbook
from broadcaster.runbooks.scheduler import Host, job_id
from broadcaster.states import Mode, StepState
from broadcaster.store.leadership import SCHEDULER_LEAD
from broadcaster.store.records import RunRecord, RunStepRow
from tests.engine.providers import SECRETS, Providers
from tests.runbooks.conftest import CLOSURE, Site, closure, dead_owner, make_run, runbook_from, write_runbook
from tests.support import reopen

DEADLINE_S = 15.0  # generous: only a hang reaches it

TWO_STEPS = CLOSURE + """
[[steps]]
id = "extend"
update = "closure"
after = "9m55s"
vars = { ends = "{now+4h}" }
"""


async def scheduled_then_stopped(app: App, runbook: Runbook, *, started_at: float | None = None) -> RunRecord:
    """A run whose steps a host scheduled before it stopped: their rows wait in ``run_steps``."""
    first = host(app)
    await first.start(paused=True)
    run = make_run(app.config, runbook, started_at=started_at)
    await first.start_run(run)
    await first.shutdown()
    return run


async def rows(app: App, run_id: str) -> dict[tuple[str, int], RunStepRow]:
    return {(r.step_id, r.occurrence): r for r in await app.store.runs.steps(run_id)}


async def scheduled_jobs(app: App) -> list[str]:
    """The schedule as every node sees it: the ``scheduled`` rows, as job ids."""
    return [job_id(r.run_id, r.step_id, r.occurrence) for r in await app.store.runs.scheduled()]


async def alert_count(app: App) -> int:
    return int((await app.store.db.execute("SELECT COUNT(*) AS n FROM alerts")).scalar())


async def serve_to_end(scheduler: Host, run_id: str) -> RunRecord | None:
    """Start ``scheduler`` (a process coming back), let it serve the run to its end, then shut it down."""
    await scheduler.start()
    try:
        return await asyncio.wait_for(scheduler.serve(run_id=run_id), timeout=DEADLINE_S)
    finally:
        await scheduler.shutdown()


async def test_a_job_run_twice_fires_once(tmp_path: Path, fast_app: App) -> None:
    scheduler = host(fast_app)
    await scheduler.start(paused=True)  # it leads and keeps its timers, but executes nothing: we run the job
    try:
        run = make_run(fast_app.config, closure(tmp_path))
        await scheduler.start_run(run)
        assert await scheduled_jobs(fast_app) == [f"{run.id}/closure/0"]
        assert scheduler.jobs() == [f"{run.id}/closure/0"]
        both = await asyncio.gather(scheduler._job(run.id, "closure", 0), scheduler._job(run.id, "closure", 0))
        again = await scheduler._job(run.id, "closure", 0)
    finally:
        await scheduler.shutdown()
    assert sorted(f.state for f in both if f is not None) == ["fired", "taken"]
    assert again is not None and again.state == "taken"
    assert [f.state for f in scheduler.fired] == ["fired"]
    row = (await rows(fast_app, run.id))[("closure", 0)]
    assert row.state == "fired" and row.alert_id == scheduler.fired[0].alert_id and row.alert_id is not None
    assert await alert_count(fast_app) == 1
    deliveries = await fast_app.store.alerts.deliveries(row.alert_id)
    assert deliveries and {d.state for d in deliveries} == {"sent"}


async def test_a_step_due_during_downtime_fires_once_after_a_restart(tmp_path: Path, fast_app: App) -> None:
    first = host(fast_app, poll_s=0.05)
    await first.start()
    run = make_run(fast_app.config, closure(tmp_path, after="1s"))
    await first.start_run(run)
    await first.shutdown()  # the process "dies" before the step is due
    assert await scheduled_jobs(fast_app) == [f"{run.id}/closure/0"]
    await asyncio.sleep(1.3)  # the step's time passes while nothing runs
    second = host(fast_app, poll_s=0.05)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    assert first.fired == [] and [f.state for f in second.fired] == ["fired"]
    row = (await rows(fast_app, run.id))[("closure", 0)]
    assert row.state == "fired" and row.fired_at is not None and row.due_at is not None
    assert 1.0 <= row.fired_at - run.started_at < 10
    assert await scheduled_jobs(fast_app) == [] and second.jobs() == []
    assert await alert_count(fast_app) == 1


async def test_restart_fires_within_grace_and_reports_what_is_beyond_it(tmp_path: Path, fast_app: App) -> None:
    # A run that started ten minutes ago while no scheduler ran: its first step was due then (beyond the
    # five-minute grace), its second five seconds ago (within it).
    run = await scheduled_then_stopped(fast_app, closure(tmp_path, text=TWO_STEPS), started_at=time.time() - 600)
    reports: list[str] = []
    second = host(fast_app, poll_s=0.05, report=reports.append)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    result = await rows(fast_app, run.id)
    assert result[("closure", 0)].state == "missed"
    assert "beyond the 5m grace window" in (result[("closure", 0)].detail or "")
    assert second.missed == [(run.id, "closure", 0)]
    assert any(line.startswith(f"MISSED {run.id}: closure #0") for line in reports)
    # The update has nothing to follow up: it is skipped, with the reason, not fired against nothing.
    assert result[("extend", 0)].state == "skipped"
    assert "did not fire (missed)" in (result[("extend", 0)].detail or "")
    assert await alert_count(fast_app) == 0


async def test_a_missed_step_does_not_stop_the_steps_after_it(tmp_path: Path, fast_app: App) -> None:
    text = CLOSURE + CLOSURE.split("[[steps]]")[1].replace('id = "closure"', 'id = "second"').replace(
        'after = "AFTER"', 'after = "9m55s"').join(["[[steps]]", ""])
    run = await scheduled_then_stopped(fast_app, closure(tmp_path, text=text), started_at=time.time() - 600)
    second = host(fast_app, poll_s=0.05)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    result = await rows(fast_app, run.id)
    assert (result[("closure", 0)].state, result[("second", 0)].state) == ("missed", "fired")
    assert [f.step.id for f in second.fired] == ["second"]
    assert await alert_count(fast_app) == 1


async def test_confirm_status_and_stop_from_another_process(
    tmp_path: Path, fast: Site, fast_app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CLOSURE.replace("AFTER", "0s") + """
[[steps]]
id = "reopened"
template = "all_clear"
channels = "x-authority"
confirm = true
vars = { event = "road_closure", area = "DXB", ended = "{now}" }
"""

    async def cli(*args: str) -> int:
        """The CLI on a thread of its own: its own event loop and its own connection, as another process."""
        return await asyncio.to_thread(main, fast.cli(*args))

    runbook = runbook_from(tmp_path, text)
    scheduler = host(fast_app, poll_s=0.05)
    await scheduler.start()
    try:
        run = make_run(fast_app.config, runbook)
        await scheduler.start_run(run)
        serving = asyncio.create_task(scheduler.serve(run_id=run.id))
        deadline = time.monotonic() + DEADLINE_S
        while (await rows(fast_app, run.id)).get(("reopened", 0)) is None:
            assert time.monotonic() < deadline, "the confirm step was never reached"
            await asyncio.sleep(0.05)
        assert await cli("runbook", "status", "--json") == 0
        status = orjson.loads(capsys.readouterr().out)
        (shown,) = status["runs"]
        assert shown["run_id"] == run.id and shown["state"] == "running"
        assert [(s["step"], s["state"]) for s in shown["steps"]] == [("closure", "fired"), ("reopened", "awaiting")]
        assert await cli("runbook", "confirm", run.id, "closure") == 2
        capsys.readouterr()
        assert await cli("runbook", "confirm", run.id, "reopened") == 0
        final = await asyncio.wait_for(serving, timeout=DEADLINE_S)
        assert final is not None and final.state == "finished"
        assert (await rows(fast_app, run.id))[("reopened", 0)].state == "fired"

        # A second run, stopped from "another process" before its step is due.
        later = make_run(fast_app.config, closure(tmp_path, after="1h"))
        await scheduler.start_run(later)
        assert await scheduled_jobs(fast_app) == [f"{later.id}/closure/0"]
        assert f"{later.id}/closure/0" in scheduler.jobs()
        assert await cli("runbook", "stop", later.id) == 0
        assert "1 scheduled job(s) removed" in capsys.readouterr().out
        assert await scheduled_jobs(fast_app) == []
        assert await scheduler.poll()  # the leader drops the timer at its next poll
        assert scheduler.jobs() == []
        assert (await fast_app.store.runs.get(later.id)).state == "stopped"
        assert (await rows(fast_app, later.id))[("closure", 0)].state == "skipped"
        assert await cli("runbook", "stop", later.id) == 2
    finally:
        await scheduler.shutdown()
    assert [f.step.id for f in scheduler.fired] == ["closure", "reopened"]


def test_runbook_run_live_against_the_fakes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    text = CLOSURE.replace("AFTER", "0s").replace('channels = "x-authority,telegram-authority"', 'channels = "all"')
    text += """
[[steps]]
id = "mistake"
cancel = "closure"
after = "1s"
"""
    with Providers(tmp_path, recipients=3) as p:
        path = write_runbook(tmp_path, text)
        code = main(p.cli("runbook", "run", str(path), "--live", "--yes", as_user="officer"))
        out = capsys.readouterr().out
        assert code == 0, out
        assert "LIVE" in out and "finished" in out
        # X: the alert in both languages, then the cancel threaded under each post.
        assert len(p.x.tweets) == 4
        assert [t["reply_to"] for t in p.x.tweets[2:]] == [t["id"] for t in p.x.tweets[:2]]
        assert "تصحيح" in p.x.tweets[2]["text"] and "Correction" in p.x.tweets[3]["text"]
        # SMS: each recipient got the closure and then its correction, once each.
        for phone in p.phones:
            assert len(p.twilio.messages_to(phone)) == 2
        assert [d.json["msgType"] for d in p.webhook.deliveries] == ["Alert", "Cancel"]


def test_a_live_run_needs_a_typed_confirmation(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with Providers(tmp_path, recipients=1) as p:
        path = write_runbook(tmp_path, CLOSURE.replace("AFTER", "0s"))
        assert main(p.cli("runbook", "run", str(path), "--live", as_user="officer")) == 2
        assert "confirmation" in capsys.readouterr().err
        assert p.x.requests == []


async def test_a_step_claimed_by_a_process_that_died_before_committing_fires_once(
    tmp_path: Path, fast_app: App
) -> None:
    run = await scheduled_then_stopped(fast_app, closure(tmp_path))
    # It claimed the step and died before the alert reached the outbox (whose commit writes alert_id under the
    # claim): nothing went out.
    assert await fast_app.store.runs.move_step(run.id, "closure", 0, from_states=(StepState.SCHEDULED,),
                                               to_state=StepState.FIRING, owner=dead_owner())
    second = host(fast_app, poll_s=0.05)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    assert [f.state for f in second.fired] == ["fired"]
    row = (await rows(fast_app, run.id))[("closure", 0)]
    assert (row.state, row.owner, row.alert_id) == ("fired", second.owner, second.fired[0].alert_id)
    assert await alert_count(fast_app) == 1


async def test_a_step_left_firing_by_a_leader_on_another_machine_waits_for_its_node_to_go_silent(
    tmp_path: Path, fast_app: App
) -> None:
    run = await scheduled_then_stopped(fast_app, closure(tmp_path))
    store = fast_app.store
    elsewhere = "another-machine:4242:beef0001"  # its pid means nothing here: only its heartbeat tells
    await store.nodes.register(elsewhere, "scheduler")
    assert await store.runs.move_step(run.id, "closure", 0, from_states=(StepState.SCHEDULED,),
                                      to_state=StepState.FIRING, owner=elsewhere)
    second = host(fast_app)
    await second.start(paused=True)
    await second.shutdown()
    assert (await rows(fast_app, run.id))[("closure", 0)].state == "firing"  # it may still be firing: leave it
    await store.db.execute("UPDATE nodes SET heartbeat_at = ? WHERE id = ?", (time.time() - 60, elsewhere))
    third = host(fast_app, poll_s=0.05)
    final = await serve_to_end(third, run.id)
    assert final is not None and final.state == "finished"
    assert [f.state for f in third.fired] == ["fired"] and await alert_count(fast_app) == 1


async def test_a_step_committed_before_a_crash_is_delivered_not_fired_again(tmp_path: Path, fast_app: App) -> None:
    first = host(fast_app)
    await first.start(paused=True)
    run = make_run(fast_app.config, closure(tmp_path))
    await first.start_run(run)
    await first._job(run.id, "closure", 0)
    await first.shutdown()
    store = fast_app.store
    alert_id = (await rows(fast_app, run.id))[("closure", 0)].alert_id
    assert alert_id is not None
    # Pretend the process died right after the outbox commit, before anything was sent.
    assert await store.runs.move_step(run.id, "closure", 0, from_states=(StepState.FIRED,),
                                      to_state=StepState.FIRING, owner=dead_owner())
    await reopen(store.db, "UPDATE deliveries SET state = 'pending', next_attempt_at = 0 WHERE alert_id = ?",
                 (alert_id,))
    await store.db.execute("UPDATE runs SET state = 'running', finished_at = NULL WHERE id = ?", (run.id,))
    reports: list[str] = []
    second = host(fast_app, poll_s=0.05, report=reports.append)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    assert second.fired == [] and await alert_count(fast_app) == 1
    row = (await rows(fast_app, run.id))[("closure", 0)]
    assert row.state == "fired" and "committed before its host died" in (row.detail or "")
    assert any("was committed before a crash" in line and alert_id in line for line in reports), reports
    deliveries = await store.alerts.deliveries(alert_id)
    assert deliveries and {d.state for d in deliveries} == {"sent"}


async def test_a_database_failure_as_a_step_commits_leaves_it_to_fire_once_when_the_database_is_back(
    tmp_path: Path, fast_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retryable store error while a step fires is no reason to drop the step: it fires once, later."""
    commit = fast_app.store.alerts.create
    failed: list[str] = []

    async def lost_once(*args: Any, **kwargs: Any) -> tuple[int, int]:
        if not failed:
            failed.append(args[0].id)
            raise StoreUnavailable("lost the connection to the database (cut by the test)")
        return await commit(*args, **kwargs)

    monkeypatch.setattr(fast_app.store.alerts, "create", lost_once)
    run = make_run(fast_app.config, closure(tmp_path))
    reports: list[str] = []
    scheduler = host(fast_app, poll_s=0.05, report=reports.append)
    await scheduler.start()
    try:
        await scheduler.start_run(run)
        final = await asyncio.wait_for(scheduler.serve(run_id=run.id), timeout=DEADLINE_S)
    finally:
        await scheduler.shutdown()
    assert len(failed) == 1  # the first commit failed, and nothing of it was stored
    assert any(f"{run.id}: closure #0 not fired yet: the database failed" in line for line in reports), reports
    assert final is not None and final.state == "finished"
    row = (await rows(fast_app, run.id))[("closure", 0)]
    assert row.state == "fired" and row.alert_id is not None and row.alert_id != failed[0]
    assert [f.state for f in scheduler.fired] == ["fired"] and await alert_count(fast_app) == 1
    deliveries = await fast_app.store.alerts.deliveries(row.alert_id)
    assert deliveries and {d.state for d in deliveries} == {"sent"}


async def test_a_host_stopped_mid_fire_leaves_nothing_claimed_and_the_next_host_finishes_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    text = CLOSURE.replace("AFTER", "0s").replace('"x-authority,telegram-authority"', '"sms-residents"')
    with Providers(tmp_path, recipients=30, latency=0.02, sms_rate=20) as p:
        async with open_app(str(p.config), str(p.db)) as app:
            run = make_run(app.config, runbook_from(tmp_path, text), mode=Mode.LIVE)
            reports: list[str] = []
            first = host(app, poll_s=0.05, report=reports.append)
            await first.start()
            try:
                await first.start_run(run)
                deadline = time.monotonic() + DEADLINE_S
                while len(p.twilio.messages) < 5:
                    assert time.monotonic() < deadline, "the fire never got going"
                    await asyncio.sleep(0.02)
            finally:
                await first.shutdown()  # Ctrl-C or SIGTERM, mid-fan-out
            assert len(p.twilio.messages) < len(p.phones), "stopped too late to test anything"
            row = (await rows(app, run.id))[("closure", 0)]
            assert row.state == "firing" and row.alert_id is not None
            states = {d.state for d in await app.store.alerts.deliveries(row.alert_id)}
            assert "sending" not in states  # what it held is left for reconciliation, not claimed by a ghost
            assert await app.store.leadership.holder(SCHEDULER_LEAD) is None  # the next host leads at once
            assert any(f"job {run.id}/closure/0 stopped with this host" in line for line in reports), reports

            second = host(app, poll_s=0.05, report=reports.append)
            final = await serve_to_end(second, run.id)
            assert final is not None and final.state == "finished" and second.fired == []
            assert {d.state for d in await app.store.alerts.deliveries(row.alert_id)} == {"sent"}
            assert await alert_count(app) == 1
        assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)  # every phone exactly once


def test_a_live_run_without_secrets_is_refused_before_anything_fires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TELEGRAM_TOKEN")
    with Providers(tmp_path, recipients=1) as p:
        path = write_runbook(tmp_path, CLOSURE.replace("AFTER", "0s"))
        assert main(p.cli("runbook", "run", str(path), "--live", "--yes", as_user="officer")) == 2
        assert "TELEGRAM_TOKEN" in capsys.readouterr().err
        assert p.x.requests == [] and p.telegram.requests == []


def test_runbook_resume_hosts_a_kept_schedule_until_the_run_ends(
    tmp_path: Path, fast: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    async def start_and_die() -> str:
        async with fast.open() as app:
            first = host(app)
            await first.start(paused=True)
            run = make_run(app.config, closure(tmp_path), started_at=time.time() - 30)  # due 30 s ago: in grace
            await first.start_run(run)
            await first.shutdown()
            return run.id

    run_id = asyncio.run(start_and_die())
    assert main(fast.cli("runbook", "resume", run_id)) == 0
    out = capsys.readouterr().out
    assert f"run {run_id} finished" in out
    steps = fast.reader.run_steps(run_id)
    assert [(r.step_id, r.state) for r in steps] == [("closure", "fired")]
    assert steps[0].alert_id is not None and {d.state for d in fast.reader.deliveries(steps[0].alert_id)} == {"sent"}
    assert main(fast.cli("runbook", "resume", run_id)) == 2


async def test_a_fire_broken_off_by_the_database_is_handed_back_when_the_lead_moves_meanwhile(
    tmp_path: Path, fast: Site, fast_app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Host A's commit fails and A loses the lead; B leads and sees A alive, so A itself re-arms the step."""
    run = make_run(fast_app.config, closure(tmp_path))
    first = host(fast_app, poll_s=0.05)
    failed: list[str] = []

    async def lost(*args: Any, **_: Any) -> tuple[int, int]:
        failed.append(args[0].id)
        await fast_app.store.leadership.release(SCHEDULER_LEAD, first.owner)
        raise StoreUnavailable("lost the connection to the database (cut by the test)")

    async def never_leads(*_: Any, **__: Any) -> bool:
        return False

    monkeypatch.setattr(fast_app.store.alerts, "create", lost)
    await first.start()
    await first.start_run(run)
    while not failed:  # noqa: ASYNC110 - the fire is A's own task; watch for its failed commit
        await asyncio.sleep(0.01)
    monkeypatch.setattr(fast_app.store.leadership, "try_lead", never_leads)  # A is alive, but follows now

    async with fast.open() as other:
        second = host(other, poll_s=0.05)
        await second.start()
        serving = asyncio.create_task(first.serve(run_id=run.id))
        try:
            final = await asyncio.wait_for(second.serve(run_id=run.id), timeout=DEADLINE_S)
        finally:
            serving.cancel()
            await second.shutdown()
            await first.shutdown()
        row = (await rows(other, run.id))[("closure", 0)]
        count = await alert_count(other)

    assert final is not None and final.state == "finished"
    assert len(failed) == 1 and count == 1
    assert row.state == "fired" and row.alert_id not in (None, failed[0])
    assert [f.state for f in second.fired] == ["fired"] and first.fired == []
