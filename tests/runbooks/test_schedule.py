"""`broadcaster fire --at / --every --until` and `broadcaster schedule list|cancel|run`."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
import pytest
from broadcaster.runbooks.store import run_store

from broadcaster.app import App
from broadcaster.cli import main

FIRE = ["fire", "road_closure", "--use-examples", "--dry-run", "--channels", "x-authority,telegram-authority"]


def cli(app: App, *args: str) -> list[str]:
    return ["--config", str(app.config.path), "--db", app.database, *args]


def run_json(app: App, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(cli(app, *args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result: dict[str, Any] = orjson.loads(captured.out)
    return result


def test_fire_at_stores_a_job_that_schedule_list_shows_and_cancel_removes(
    fast_app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduled = run_json(fast_app, capsys, *FIRE, "--at", "+2h", "--json")
    schedule_id = scheduled["schedule_id"]
    assert schedule_id.startswith("sch-") and scheduled["every_s"] is None
    at = datetime.fromisoformat(scheduled["at"]).timestamp()
    assert abs(at - (time.time() + 7200)) < 60
    (job,) = run_json(fast_app, capsys, "schedule", "list", "--json")["jobs"]
    assert job["run_id"] == schedule_id and job["kind"] == "schedule" and job["runbook"] == "road_closure"
    assert job["mode"] == "dry-run" and datetime.fromisoformat(job["next_run"]).timestamp() == pytest.approx(at, 1)
    assert fast_app.store.alerts() == []  # nothing fired yet
    assert main(cli(fast_app, "schedule", "cancel", schedule_id)) == 0
    assert "cancelled" in capsys.readouterr().out
    assert run_json(fast_app, capsys, "schedule", "list", "--json")["jobs"] == []
    assert run_store(fast_app).run(schedule_id).state == "stopped"


def test_fire_every_until_schedules_the_first_occurrence(fast_app: App, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(cli(fast_app, *FIRE, "--at", "+1h", "--every", "1h", "--until", "+4h30m"))
    out = capsys.readouterr().out
    assert code == 0
    assert "then every 1h until" in out and "(4 in all)" in out and "broadcaster schedule run" in out
    jobs = run_json(fast_app, capsys, "schedule", "list", "--json")["jobs"]
    assert [j["occurrence"] for j in jobs] == [0]


@pytest.mark.parametrize(("extra", "message"), [
    (["--every", "1h"], "--every and --until go together"),
    (["--at", "2020-01-01T00:00:00+04:00"], "that time has passed"),
    (["--at", "tomorrow"], "not an ISO 8601"),
    (["--every", "10s", "--until", "+1h"], "at most once a minute"),
    (["--at", "+2h", "--every", "1h", "--until", "+1h"], "must come after the first fire"),
])
def test_bad_schedules_are_refused(fast_app: App, capsys: pytest.CaptureFixture[str], extra: list[str],
                                   message: str) -> None:
    assert main(cli(fast_app, *FIRE, *extra)) == 2
    assert message in capsys.readouterr().err
    assert run_store(fast_app).runs() == []


def test_a_scheduled_fire_is_checked_when_it_is_scheduled(fast_app: App, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(cli(fast_app, "fire", "road_closure", "--var", "road=E99", "--dry-run", "--at", "+1h"))
    assert code == 2
    assert "'E99' is not a road" in capsys.readouterr().err
    assert run_store(fast_app).runs() == []


def test_listing_never_runs_or_drops_a_due_job(fast_app: App, capsys: pytest.CaptureFixture[str]) -> None:
    scheduled = run_json(fast_app, capsys, *FIRE, "--at", "now", "--json")
    for _ in range(3):
        (job,) = run_json(fast_app, capsys, "schedule", "list", "--json")["jobs"]
        assert job["run_id"] == scheduled["schedule_id"]
    assert fast_app.store.alerts() == []


def test_schedule_run_executes_a_due_fire_once(fast_app: App, capsys: pytest.CaptureFixture[str]) -> None:
    scheduled = run_json(fast_app, capsys, *FIRE, "--at", "now", "--json")
    assert main(cli(fast_app, "schedule", "run", "--until-idle")) == 0
    out = capsys.readouterr().out
    assert f"{scheduled['schedule_id']}: fire #0 fired" in out
    (alert,) = fast_app.store.alerts()
    assert alert.template == "road_closure" and alert.mode == "dry-run"
    assert run_store(fast_app).run(scheduled["schedule_id"]).state == "finished"
    assert run_json(fast_app, capsys, "schedule", "list", "--json")["jobs"] == []
    # The schedule's log reads like a run's.
    assert main(cli(fast_app, "log", scheduled["schedule_id"], "--json")) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["alert_id"] for line in lines} == {alert.id}
    # Running the host again fires nothing more.
    assert main(cli(fast_app, "schedule", "run", "--until-idle")) == 0
    assert len(fast_app.store.alerts()) == 1


def test_cancel_one_job_by_id(fast_app: App, capsys: pytest.CaptureFixture[str]) -> None:
    scheduled = run_json(fast_app, capsys, *FIRE, "--at", "+3h", "--json")
    job_id = f"{scheduled['schedule_id']}/fire/0"
    assert main(cli(fast_app, "schedule", "cancel", job_id)) == 0
    assert "will not fire" in capsys.readouterr().out
    assert run_json(fast_app, capsys, "schedule", "list", "--json")["jobs"] == []
    assert main(cli(fast_app, "schedule", "cancel", job_id)) == 2
    assert "no scheduled job" in capsys.readouterr().err
