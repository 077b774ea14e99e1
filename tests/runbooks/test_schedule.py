"""`broadcaster fire --at / --every --until` and `broadcaster schedule list|cancel|run`."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
import pytest

from broadcaster.cli import main
from broadcaster.templates.variables import example_inputs
from tests.runbooks.conftest import Site

FIRE = ["fire", "road_closure", "--use-examples", "--dry-run", "--channels", "x-authority,telegram-authority"]


def run_json(site: Site, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(site.cli(*args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result: dict[str, Any] = orjson.loads(captured.out)
    return result


def test_fire_at_stores_a_job_that_schedule_list_shows_and_cancel_removes(
    fast: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduled = run_json(fast, capsys, *FIRE, "--at", "+2h", "--json")
    schedule_id = scheduled["schedule_id"]
    assert schedule_id.startswith("sch-") and scheduled["every_s"] is None
    at = datetime.fromisoformat(scheduled["at"]).timestamp()
    assert abs(at - (time.time() + 7200)) < 60
    (job,) = run_json(fast, capsys, "schedule", "list", "--json")["jobs"]
    assert job["run_id"] == schedule_id and job["kind"] == "schedule" and job["runbook"] == "road_closure"
    assert job["mode"] == "dry-run" and datetime.fromisoformat(job["next_run"]).timestamp() == pytest.approx(at, 1)
    assert fast.reader.alerts() == []  # nothing fired yet
    assert main(fast.cli("schedule", "cancel", schedule_id)) == 0
    assert "cancelled" in capsys.readouterr().out
    assert run_json(fast, capsys, "schedule", "list", "--json")["jobs"] == []
    assert fast.reader.run(schedule_id).state == "stopped"


def test_fire_every_until_schedules_the_first_occurrence(fast: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(fast.cli(*FIRE, "--at", "+1h", "--every", "1h", "--until", "+4h30m"))
    out = capsys.readouterr().out
    assert code == 0
    assert "then every 1h until" in out and "(4 in all)" in out and "broadcaster schedule run" in out
    jobs = run_json(fast, capsys, "schedule", "list", "--json")["jobs"]
    assert [j["occurrence"] for j in jobs] == [0]


@pytest.mark.parametrize(("extra", "message"), [
    (["--every", "1h"], "--every and --until go together"),
    (["--at", "2020-01-01T00:00:00+04:00"], "that time has passed"),
    (["--at", "tomorrow"], "not an ISO 8601"),
    (["--at", "9999-12-31T23:59:59-04:00"], "between the years 2000 and 2099"),
    (["--at", "+1h", "--every", "1h", "--until", "0001-01-01T00:00:00+04:00"], "between the years 2000 and 2099"),
    (["--at", "+1h", "--every", "99999d", "--until", "+2h"], "longer than ten years"),
    (["--every", "10s", "--until", "+1h"], "at most once a minute"),
    (["--at", "+2h", "--every", "1h", "--until", "+1h"], "must come after the first fire"),
])
def test_bad_schedules_are_refused(fast: Site, capsys: pytest.CaptureFixture[str], extra: list[str],
                                   message: str) -> None:
    assert main(fast.cli(*FIRE, *extra)) == 2
    assert message in capsys.readouterr().err
    assert fast.reader.runs() == []


def test_a_scheduled_fire_is_checked_when_it_is_scheduled(fast: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(fast.cli("fire", "road_closure", "--var", "road=E99", "--dry-run", "--at", "+1h"))
    assert code == 2
    assert "'E99' is not a road" in capsys.readouterr().err
    assert fast.reader.runs() == []


def test_listing_never_runs_or_drops_a_due_job(fast: Site, capsys: pytest.CaptureFixture[str]) -> None:
    scheduled = run_json(fast, capsys, *FIRE, "--at", "now", "--json")
    for _ in range(3):
        (job,) = run_json(fast, capsys, "schedule", "list", "--json")["jobs"]
        assert job["run_id"] == scheduled["schedule_id"]
    assert fast.reader.alerts() == []


def test_schedule_run_executes_a_due_fire_once(fast: Site, capsys: pytest.CaptureFixture[str]) -> None:
    scheduled = run_json(fast, capsys, *FIRE, "--at", "now", "--json")
    assert main(fast.cli("schedule", "run", "--until-idle")) == 0
    out = capsys.readouterr().out
    assert f"{scheduled['schedule_id']}: fire #0 fired" in out
    (alert,) = fast.reader.alerts()
    assert alert.template == "road_closure" and alert.mode == "dry-run"
    assert fast.reader.run(scheduled["schedule_id"]).state == "finished"
    assert run_json(fast, capsys, "schedule", "list", "--json")["jobs"] == []
    # The schedule's log reads like a run's.
    assert main(fast.cli("log", scheduled["schedule_id"], "--json")) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["alert_id"] for line in lines} == {alert.id}
    # Running the host again fires nothing more.
    assert main(fast.cli("schedule", "run", "--until-idle")) == 0
    assert len(fast.reader.alerts()) == 1


def test_cancel_one_job_by_id(fast: Site, capsys: pytest.CaptureFixture[str]) -> None:
    scheduled = run_json(fast, capsys, *FIRE, "--at", "+3h", "--json")
    job_id = f"{scheduled['schedule_id']}/fire/0"
    assert main(fast.cli("schedule", "cancel", job_id)) == 0
    assert "will not fire" in capsys.readouterr().out
    assert run_json(fast, capsys, "schedule", "list", "--json")["jobs"] == []
    assert main(fast.cli("schedule", "cancel", job_id)) == 2
    assert "no scheduled job" in capsys.readouterr().err


def test_schedule_list_tells_two_scheduled_closures_apart(fast: Site, capsys: pytest.CaptureFixture[str]) -> None:
    """Before, both rows read "road_closure dry-run": which road closes when was nowhere."""
    for road, at in (("E11", "+2h"), ("E311", "+3h")):
        run_json(fast, capsys, *closure_of(fast, road), "--at", at, "--json")
    jobs = run_json(fast, capsys, "schedule", "list", "--json")["jobs"]
    assert sorted("road=E11" in j["facts"].split(", ") for j in jobs) == [False, True]
    assert sorted("road=E311" in j["facts"].split(", ") for j in jobs) == [False, True]
    assert main(fast.cli("schedule", "list")) == 0
    table = capsys.readouterr().out
    assert "road=E11" in table and "road=E311" in table


def closure_of(site: Site, road: str) -> list[str]:
    """``fire road_closure`` (dry-run) with the example's values but ``road``."""
    inputs = example_inputs(site.catalogue.get("road_closure"), time.time() + 3 * 3600, site.config.timezone)
    args = ["fire", "road_closure", "--dry-run", "--channels", "x-authority,telegram-authority"]
    for name, by_lang in inputs.items():
        if name == "road":
            args += ["--var", f"road={road}"]
        elif by_lang["ar"] == by_lang["en"]:
            args += ["--var", f"{name}={by_lang['en']}"]
        else:
            args += ["--var", f"{name}.ar={by_lang['ar']}", "--var", f"{name}.en={by_lang['en']}"]
    return args
