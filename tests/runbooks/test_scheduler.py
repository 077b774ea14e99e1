"""`broadcaster runbook run`: APScheduler jobs that survive restarts and never fire twice."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import orjson
import pytest
from broadcaster.runbooks.records import RunRecord, RunStepRow
from broadcaster.runbooks.store import run_store

from broadcaster.app import App
from broadcaster.cli import main
from broadcaster.runbooks.model import Runbook
from broadcaster.runbooks.scheduler import Host, job_store, run_step_job
from tests.engine.providers import SECRETS, Providers
from tests.runbooks.conftest import make_run, runbook_from, write_runbook

CLOSURE = """
name = { ar = "اختبار", en = "Test" }
[[steps]]
id = "closure"
template = "road_closure"
channels = "x-authority,telegram-authority"
after = "AFTER"
vars.road = "E11"
vars.reason = "accident"
vars.starts = "{now}"
vars.ends = "{now+2h}"
vars.detour = { ar = "شارع الخيل", en = "Al Khail Road" }
"""

TWO_STEPS = CLOSURE + """
[[steps]]
id = "extend"
update = "closure"
after = "9m55s"
vars = { ends = "{now+4h}" }
"""


async def scheduled_then_stopped(app: App, runbook: Runbook, *, started_at: float | None = None) -> RunRecord:
    """A run whose steps a host scheduled before it stopped: their jobs wait in the job store."""
    first = Host(app)
    await first.start(paused=True)
    run = make_run(app, runbook, started_at=started_at)
    first.start_run(run)
    await first.shutdown()
    return run


def closure(tmp_path: Path, after: str = "0s", text: str = CLOSURE) -> Runbook:
    return runbook_from(tmp_path, text.replace("AFTER", after))


def rows(app: App, run_id: str) -> dict[tuple[str, int], RunStepRow]:
    return {(r.step_id, r.occurrence): r for r in run_store(app).run_steps(run_id)}


def jobs(app: App) -> list[str]:
    with job_store(app) as scheduler:
        return [job.id for job in scheduler.get_jobs()]


async def serve_to_end(host: Host, run_id: str) -> RunRecord | None:
    """Start ``host`` (a process coming back), let it serve the run to its end, then shut it down."""
    await host.start()
    try:
        return await asyncio.wait_for(host.serve(run_id=run_id), timeout=15)
    finally:
        await host.shutdown()


async def test_a_job_run_twice_fires_once(tmp_path: Path, fast_app: App) -> None:
    host = Host(fast_app)
    await host.start(paused=True)  # the job stays in the store; we run the job function by hand
    try:
        run = make_run(fast_app, closure(tmp_path))
        host.start_run(run)
        assert jobs(fast_app) == [f"{run.id}/closure/0"]
        await asyncio.gather(run_step_job(run.id, "closure", 0), run_step_job(run.id, "closure", 0))
        await run_step_job(run.id, "closure", 0)
    finally:
        await host.shutdown()
    assert [f.state for f in host.fired] == ["fired"]
    row = rows(fast_app, run.id)[("closure", 0)]
    assert row.state == "fired" and row.alert_id == host.fired[0].alert_id
    alerts = fast_app.store.db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]  # type: ignore[attr-defined]
    assert alerts == 1
    assert {d.state for d in fast_app.store.deliveries(row.alert_id)} == {"sent"}


async def test_a_step_due_during_downtime_fires_once_after_a_restart(tmp_path: Path, fast_app: App) -> None:
    first = Host(fast_app, poll_s=0.05)
    await first.start()
    run = make_run(fast_app, closure(tmp_path, after="1s"))
    first.start_run(run)
    await first.shutdown()  # the process "dies" before the step is due
    assert jobs(fast_app) == [f"{run.id}/closure/0"]
    await asyncio.sleep(1.3)  # the step's time passes while nothing runs
    second = Host(fast_app, poll_s=0.05)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    assert first.fired == [] and [f.state for f in second.fired] == ["fired"]
    row = rows(fast_app, run.id)[("closure", 0)]
    assert row.state == "fired" and row.fired_at is not None and row.due_at is not None
    assert 1.0 <= row.fired_at - run.started_at < 10
    assert jobs(fast_app) == []


async def test_restart_fires_within_grace_and_reports_what_is_beyond_it(tmp_path: Path, fast_app: App) -> None:
    # A run that started ten minutes ago while no scheduler ran: its first step was due then (beyond the
    # five-minute grace), its second five seconds ago (within it).
    run = await scheduled_then_stopped(fast_app, closure(tmp_path, text=TWO_STEPS), started_at=time.time() - 600)
    reports: list[str] = []
    second = Host(fast_app, poll_s=0.05, report=reports.append)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    result = rows(fast_app, run.id)
    assert result[("closure", 0)].state == "missed"
    assert "beyond the 5m grace window" in (result[("closure", 0)].detail or "")
    assert second.missed == [(run.id, "closure", 0)]
    assert any(line.startswith(f"MISSED {run.id}: closure #0") for line in reports)
    # The update has nothing to follow up: it is skipped, with the reason, not fired against nothing.
    assert result[("extend", 0)].state == "skipped"
    assert "did not fire (missed)" in (result[("extend", 0)].detail or "")


async def test_a_missed_step_does_not_stop_the_steps_after_it(tmp_path: Path, fast_app: App) -> None:
    text = CLOSURE + CLOSURE.split("[[steps]]")[1].replace('id = "closure"', 'id = "second"').replace(
        'after = "AFTER"', 'after = "9m55s"').join(["[[steps]]", ""])
    run = await scheduled_then_stopped(fast_app, closure(tmp_path, text=text), started_at=time.time() - 600)
    second = Host(fast_app, poll_s=0.05)
    await second.start()
    try:
        await asyncio.wait_for(second.serve(run_id=run.id), timeout=15)
    finally:
        await second.shutdown()
    result = rows(fast_app, run.id)
    assert (result[("closure", 0)].state, result[("second", 0)].state) == ("missed", "fired")
    assert [f.step.id for f in second.fired] == ["second"]


async def test_confirm_status_and_stop_from_another_process(
    tmp_path: Path, fast_app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    text = CLOSURE.replace("AFTER", "0s") + """
[[steps]]
id = "reopened"
template = "all_clear"
channels = "x-authority"
confirm = true
vars = { event = "road_closure", area = "DXB", ended = "{now}" }
"""
    runbook = runbook_from(tmp_path, text)
    cli = ["--config", str(fast_app.config.path), "--db", fast_app.database]
    host = Host(fast_app, poll_s=0.05)
    await host.start()
    try:
        run = make_run(fast_app, runbook)
        host.start_run(run)
        serving = asyncio.create_task(host.serve(run_id=run.id))
        for _ in range(200):
            if rows(fast_app, run.id).get(("reopened", 0)) is not None:
                break
            await asyncio.sleep(0.05)
        assert main([*cli, "runbook", "status", "--json"]) == 0
        status = orjson.loads(capsys.readouterr().out)
        (shown,) = status["runs"]
        assert shown["run_id"] == run.id and shown["state"] == "running"
        assert [(s["step"], s["state"]) for s in shown["steps"]] == [("closure", "fired"), ("reopened", "awaiting")]
        assert main([*cli, "runbook", "confirm", run.id, "closure"]) == 2
        capsys.readouterr()
        assert main([*cli, "runbook", "confirm", run.id, "reopened"]) == 0
        final = await asyncio.wait_for(serving, timeout=15)
        assert final is not None and final.state == "finished"
        assert rows(fast_app, run.id)[("reopened", 0)].state == "fired"

        # A second run, stopped from "another process" before its step is due.
        later = make_run(fast_app, closure(tmp_path, after="1h"))
        host.start_run(later)
        assert jobs(fast_app) == [f"{later.id}/closure/0"]
        assert main([*cli, "runbook", "stop", later.id]) == 0
        assert "1 scheduled job(s) removed" in capsys.readouterr().out
        assert jobs(fast_app) == []
        assert run_store(fast_app).run(later.id).state == "stopped"
        assert rows(fast_app, later.id)[("closure", 0)].state == "skipped"
        assert main([*cli, "runbook", "stop", later.id]) == 2
    finally:
        await host.shutdown()


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
        code = main(p.cli("runbook", "run", str(path), "--live", "--yes"))
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
        assert main(p.cli("runbook", "run", str(path), "--live")) == 2
        assert "confirmation" in capsys.readouterr().err
        assert p.x.requests == []


def dead_owner() -> str:
    """A lease owner tag naming a process on this host that does not exist."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"{os.uname().nodename}:{pid}:gone"
        except PermissionError:
            pass
        pid += 1


async def test_a_step_claimed_by_a_process_that_died_before_committing_fires_once(
    tmp_path: Path, fast_app: App
) -> None:
    run = await scheduled_then_stopped(fast_app, closure(tmp_path))
    store = run_store(fast_app)
    # It claimed the step and died before the alert reached the outbox: nothing went out.
    assert store.move_run_step(run.id, "closure", 0, from_states=("scheduled",), to_state="firing",
                               owner=dead_owner(), alert_id="20990101-000000-000000")
    second = Host(fast_app, poll_s=0.05)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    assert [f.state for f in second.fired] == ["fired"]
    assert len(fast_app.store.alerts()) == 1


async def test_a_step_left_firing_by_a_leader_on_another_machine_waits_for_its_node_to_go_silent(
    tmp_path: Path, fast_app: App
) -> None:
    run = await scheduled_then_stopped(fast_app, closure(tmp_path))
    store = run_store(fast_app)
    elsewhere = "another-machine:4242:beef0001"  # its pid means nothing here: only its heartbeat tells
    store.register_node(elsewhere, "scheduler", time.time())
    assert store.move_run_step(run.id, "closure", 0, from_states=("scheduled",), to_state="firing", owner=elsewhere)
    second = Host(fast_app)
    await second.start(paused=True)
    await second.shutdown()
    assert rows(fast_app, run.id)[("closure", 0)].state == "firing"  # it may still be firing: leave it
    store.db.execute("UPDATE nodes SET heartbeat_at = ? WHERE id = ?", (time.time() - 60, elsewhere))
    third = Host(fast_app, poll_s=0.05)
    final = await serve_to_end(third, run.id)
    assert final is not None and final.state == "finished"
    assert [f.state for f in third.fired] == ["fired"] and len(fast_app.store.alerts()) == 1


async def test_a_step_committed_before_a_crash_is_delivered_not_fired_again(tmp_path: Path, fast_app: App) -> None:
    first = Host(fast_app)
    await first.start(paused=True)
    run = make_run(fast_app, closure(tmp_path))
    first.start_run(run)
    await run_step_job(run.id, "closure", 0)
    await first.shutdown()
    store = run_store(fast_app)
    alert_id = rows(fast_app, run.id)[("closure", 0)].alert_id
    assert alert_id is not None
    # Pretend the process died right after the outbox commit, before anything was sent.
    store.move_run_step(run.id, "closure", 0, from_states=("fired",), to_state="firing", owner=dead_owner())
    store.db.execute("UPDATE deliveries SET state = 'pending', next_attempt_at = 0 WHERE alert_id = ?", (alert_id,))
    store.db.execute("UPDATE runs SET state = 'running', finished_at = NULL WHERE id = ?", (run.id,))
    second = Host(fast_app, poll_s=0.05)
    final = await serve_to_end(second, run.id)
    assert final is not None and final.state == "finished"
    assert second.fired == [] and len(fast_app.store.alerts()) == 1
    assert "committed before a crash" in (rows(fast_app, run.id)[("closure", 0)].detail or "")
    assert {d.state for d in fast_app.store.deliveries(alert_id)} == {"sent"}


def test_a_live_run_without_secrets_is_refused_before_anything_fires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TELEGRAM_TOKEN")
    with Providers(tmp_path, recipients=1) as p:
        path = write_runbook(tmp_path, CLOSURE.replace("AFTER", "0s"))
        assert main(p.cli("runbook", "run", str(path), "--live", "--yes")) == 2
        assert "TELEGRAM_TOKEN" in capsys.readouterr().err
        assert p.x.requests == [] and p.telegram.requests == []


def test_runbook_resume_hosts_a_kept_schedule_until_the_run_ends(
    tmp_path: Path, fast_app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    async def start_and_die() -> str:
        host = Host(fast_app)
        await host.start(paused=True)
        run = make_run(fast_app, closure(tmp_path), started_at=time.time() - 30)  # due 30 s ago: within grace
        host.start_run(run)
        await host.shutdown()
        return run.id

    run_id = asyncio.run(start_and_die())
    cli = ["--config", str(fast_app.config.path), "--db", fast_app.database]
    assert main([*cli, "runbook", "resume", run_id]) == 0
    out = capsys.readouterr().out
    assert f"run {run_id} finished" in out
    assert [(r.step_id, r.state) for r in run_store(fast_app).run_steps(run_id)] == [("closure", "fired")]
    assert main([*cli, "runbook", "resume", run_id]) == 2
