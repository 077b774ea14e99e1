"""A scheduled live fire of a two-person template is held for a second officer when it comes due.

``broadcaster fire earthquake --live --at …`` by one officer stores a schedule;
when the scheduler host (``broadcaster schedule run``, here in its own process)
fires it, the earthquake waits for a different officer's ``broadcaster confirm``,
as every other live earthquake does. Nothing reaches a provider before that, and
the officer who scheduled it cannot confirm it.
"""

from __future__ import annotations

import time
from datetime import datetime

import orjson
import pytest

from broadcaster.audit import AuditLog
from broadcaster.cli import main
from broadcaster.states import StepState
from broadcaster.store.pending import AWAITING, CONFIRMED, PendingFire
from broadcaster.store.records import RunStepRow
from tests.cli.conftest import Terminal, sent_anything
from tests.engine.providers import Providers
from tests.support import read

pytestmark = pytest.mark.slow  # the scheduler host runs in a process of its own


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def step(p: Providers, run_id: str) -> RunStepRow:
    (row,) = read(str(p.db), lambda s: s.runs.steps(run_id))
    return row


def held_step(p: Providers, run_id: str) -> RunStepRow | None:
    row = step(p, run_id)
    return row if row.state == StepState.HELD else None


def pending(p: Providers, alert_id: str) -> PendingFire | None:
    return read(str(p.db), lambda s: s.pending.get(alert_id))


def soon() -> str:
    """An ISO 8601 time a second or two ahead (the CLI takes whole seconds)."""
    return datetime.fromtimestamp(int(time.time()) + 2).astimezone().isoformat()


def test_a_scheduled_live_earthquake_is_held_when_due_until_a_different_officer_confirms(
    p: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    """An officer's `fire earthquake --live --at` is held when the host fires it at its time: no provider is
    reached, that officer cannot confirm it, and a second officer's `confirm` sends it and ends the schedule."""
    code, out, err = run(capsys, p.cli("fire", "earthquake", "--use-examples", "--live", "--yes", "--json",
                                       "--at", soon(), as_user="officer"))
    assert code == 0, err
    schedule_id = orjson.loads(out)["schedule_id"]
    assert step(p, schedule_id).state == StepState.SCHEDULED

    host = Terminal(p, "host", "schedule", "run", "--until-idle")
    try:
        row = host.wait_for("the scheduled earthquake held", lambda: held_step(p, schedule_id))
        alert_id = row.alert_id
        assert alert_id is not None and "held for a second officer until" in (row.detail or "")
        waiting = pending(p, alert_id)
        assert waiting is not None and (waiting.state, waiting.requested_by) == (AWAITING, "officer")
        assert read(str(p.db), lambda s: s.alerts.find(alert_id)) is None  # nothing committed
        assert not sent_anything(p)

        # The officer who scheduled it asked for it: they cannot be its second officer.
        code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes", as_user="officer"))
        assert code == 2 and "a different officer must confirm it" in err, err
        assert not sent_anything(p)
        assert step(p, schedule_id).state == StepState.HELD

        code, out, err = run(capsys, p.cli("confirm", alert_id, "--yes", "--json", as_user="officer2"))
        assert code == 0, err
        assert {d["state"] for d in orjson.loads(out)["deliveries"]} == {"sent"}
        # Once released, the schedule is done: the host finds nothing left and ends by itself.
        assert host.exit_code() == 0, host.output()
    finally:
        host.stop()
    said = host.output()
    assert f"{schedule_id}: fire #0 held · held for a second officer" in said and alert_id in said
    assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)
    assert len(p.x.tweets) == 2 and len(p.telegram.sent) == 1
    assert {d.json["alert_id"] for d in p.webhook.deliveries} == {alert_id}
    done = pending(p, alert_id)
    assert done is not None and (done.state, done.confirmed_by) == (CONFIRMED, "officer2")
    fired = step(p, schedule_id)
    assert fired.state == StepState.FIRED and "confirmed by officer2" in (fired.detail or "")
    assert read(str(p.db), lambda s: s.runs.get(schedule_id)).state == "finished"
    rows = read(str(p.db), lambda s: AuditLog(s.db).tail(limit=100))
    assert [(r.actor, r.action) for r in reversed(rows) if r.action in ("schedule", "fire", "confirm")] == [
        ("officer", "schedule"), ("officer", "fire"), ("officer2", "confirm")]
