"""A live runbook run from the command line holds its two-person step for a second officer.

One officer's ``broadcaster runbook run earthquake_response --live`` (here in a
process of its own, as in their terminal) reaches the ``alert`` step, whose
template ``earthquake`` needs two people: the step is ``held``, ``runbook
status`` shows it and until when, nothing reaches a provider, and the run goes
no further until a different officer's ``broadcaster confirm`` releases it. If
nobody does before the deadline, the step fails and nothing is ever sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from broadcaster.cli import main
from broadcaster.states import StepState
from broadcaster.store import Store
from broadcaster.store.pending import AWAITING
from broadcaster.store.records import RunStepRow
from broadcaster.timefmt import iso_seconds
from tests.cli.conftest import Terminal, sent_anything
from tests.engine.providers import REPO, Providers
from tests.service.support import rewrite_config
from tests.support import read

pytestmark = pytest.mark.slow  # the officer's `runbook run` runs in a process of its own

RUN = ("runbook", "run", "earthquake_response", "--use-examples", "--live", "--yes")


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def alert_step(p: Providers, state: StepState) -> RunStepRow | None:
    """The run's ``alert`` step once it is in ``state`` (None before the run or the step gets there)."""
    async def find(store: Store) -> RunStepRow | None:
        for record in await store.runs.recent():
            for row in await store.runs.steps(record.id):
                if (row.step_id, row.occurrence, row.state) == ("alert", 0, state):
                    return row
        return None

    return read(str(p.db), find)


def status(p: Providers, capsys: pytest.CaptureFixture[str], run_id: str) -> dict[str, dict[str, Any]]:
    """``runbook status RUN_ID --json``: each occurrence-0 step by id."""
    code, out, err = run(capsys, p.cli("runbook", "status", run_id, "--json"))
    assert code == 0, err
    (shown,) = orjson.loads(out)["runs"]
    return {s["step"]: s for s in shown["steps"] if s["occurrence"] == 0}


@pytest.fixture
def officer_run(p: Providers) -> Iterator[tuple[Terminal, RunStepRow]]:
    """The officer's live run of the shipped runbook, in its own process, once its ``alert`` step is held."""
    rewrite_config(p, runbooks=str(REPO / "runbooks"))
    terminal = Terminal(p, "officer", *RUN, as_user="officer")
    try:
        held = terminal.wait_for("the alert step held", lambda: alert_step(p, StepState.HELD))
        yield terminal, held
    finally:
        terminal.stop()


def test_a_cli_runbook_runs_two_person_step_waits_in_status_until_a_different_officer_confirms(
    p: Providers, capsys: pytest.CaptureFixture[str], officer_run: tuple[Terminal, RunStepRow]
) -> None:
    """One officer's live run holds its earthquake step: `runbook status` shows it held until its deadline, no
    provider is reached, that officer cannot confirm it, and a second officer's `confirm` sends it and the run
    goes on."""
    terminal, held = officer_run
    run_id, alert_id = held.run_id, held.alert_id
    assert alert_id is not None
    waiting = read(str(p.db), lambda s: s.pending.get(alert_id))
    assert waiting is not None and (waiting.state, waiting.requested_by) == (AWAITING, "officer")
    assert read(str(p.db), lambda s: s.alerts.find(alert_id)) is None  # nothing committed
    assert not sent_anything(p)

    # `runbook status` shows the step held, for whom and until when; the steps after it wait.
    steps = status(p, capsys, run_id)
    assert set(steps) == {"alert"} and steps["alert"]["state"] == "held" and steps["alert"]["alert_id"] == alert_id
    deadline = iso_seconds(waiting.confirm_by, ZoneInfo("Asia/Dubai"))  # channels.toml's timezone
    assert f"held for a second officer until {deadline}" in steps["alert"]["detail"]
    code, out, err = run(capsys, p.cli("runbook", "status", run_id))
    assert code == 0, err
    assert "held" in out and alert_id in out and "second officer" in out and deadline in out

    # The officer who started the run asked for the alert: they cannot be its second officer.
    code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes", as_user="officer"))
    assert code == 2 and "a different officer must confirm it" in err, err
    assert not sent_anything(p)
    assert status(p, capsys, run_id)["alert"]["state"] == "held"

    code, out, err = run(capsys, p.cli("confirm", alert_id, "--yes", "--json", as_user="officer2"))
    assert code == 0, err
    assert {d["state"] for d in orjson.loads(out)["deliveries"]} == {"sent"}
    assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)
    assert len(p.x.tweets) == 2 and len(p.telegram.sent) == 1
    steps = status(p, capsys, run_id)
    assert steps["alert"]["state"] == "fired" and "confirmed by officer2" in steps["alert"]["detail"]
    # The officer's run goes on: its host schedules the hourly advice, counted from the confirmation.
    advice = terminal.wait_for("the advice scheduled", lambda: status(p, capsys, run_id).get("aftershock_advice"))
    confirmed_at = datetime.fromisoformat(steps["alert"]["confirmed_at"])
    assert advice["state"] == "scheduled"
    assert datetime.fromisoformat(advice["due_at"]) >= confirmed_at + timedelta(hours=1, seconds=-1)

    code, _, err = run(capsys, p.cli("runbook", "stop", run_id))
    assert code == 0, err
    assert terminal.exit_code() == 1  # stopped before it finished
    assert f"{run_id}: alert #0 held · held for a second officer" in terminal.output()
    assert len(p.x.tweets) == 2  # the stop sent nothing more


def test_a_cli_runbooks_held_step_nobody_confirms_by_its_deadline_fails_and_sends_nothing(
    p: Providers, capsys: pytest.CaptureFixture[str], officer_run: tuple[Terminal, RunStepRow]
) -> None:
    """Once the held step's confirmation window has closed, the officer's own `runbook run` fails it (and says
    so), `runbook status` shows why, and a second officer's `confirm` is refused: nothing is ever sent."""
    terminal, held = officer_run
    run_id, alert_id = held.run_id, held.alert_id
    assert alert_id is not None

    async def window_closes(store: Store) -> None:  # as ten minutes passing would: its deadline is behind us
        await store.db.execute("UPDATE pending_fires SET confirm_by = ? WHERE alert_id = ?",
                               (time.time() - 1, alert_id))

    read(str(p.db), window_closes)
    failed = terminal.wait_for("the held step failed", lambda: alert_step(p, StepState.FAILED))
    assert failed.alert_id == alert_id
    steps = status(p, capsys, run_id)
    assert steps["alert"]["state"] == "failed"
    assert "not confirmed by a second officer" in steps["alert"]["detail"]
    assert "nothing was sent" in steps["alert"]["detail"]

    code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes", as_user="officer2"))
    assert code == 2 and "confirmation window" in err and "closed" in err, err
    assert read(str(p.db), lambda s: s.alerts.find(alert_id)) is None
    assert not sent_anything(p)
    assert f"alert {alert_id} was not sent" in terminal.said(f"{run_id}: alert #0 was not confirmed by")
