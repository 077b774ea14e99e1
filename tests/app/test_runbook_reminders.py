"""Which send of a repeating runbook or scheduled step is a reminder, and which one (app.runbook.reminder_number)."""

from __future__ import annotations

from typing import Any

from broadcaster.app.runbook import reminder_number
from broadcaster.runbooks.model import Step, parse_runbook


def steps(*tables: dict[str, Any]) -> dict[str, Step]:
    raw = {"name": {"ar": "تجربة", "en": "Test"}, "description": "reminders", "steps": list(tables)}
    return {s.id: s for s in parse_runbook(raw, runbook_id="test", source="test").steps}


UNTIL = "2030-01-01T06:00:00+04:00"
ALERT = {"id": "alert", "template": "earthquake", "vars": {"magnitude": "5.4", "area": "DXB", "occurred": "{now}"}}


def test_a_repeated_fire_reminds_from_its_second_send() -> None:
    # fire --every: occurrence 0 is the alert itself; each later one is a reminder, counted from 1.
    step = steps({**ALERT, "every": "1h", "until": UNTIL})["alert"]
    assert [reminder_number(step, n) for n in range(4)] == [None, 1, 2, 3]


def test_an_update_that_changes_nothing_is_a_reminder_from_its_first_send() -> None:
    step = steps(ALERT, {"id": "advice", "update": "alert", "after": "1h", "every": "1h", "until": UNTIL})["advice"]
    assert [reminder_number(step, n) for n in range(3)] == [1, 2, 3]


def test_an_update_that_changes_something_is_an_update_then_its_repeats_remind() -> None:
    step = steps(ALERT, {"id": "stronger", "update": "alert", "vars": {"magnitude": "6.0"}, "every": "1h",
                         "until": UNTIL})["stronger"]
    assert [reminder_number(step, n) for n in range(3)] == [None, 1, 2]


def test_a_one_off_update_or_cancel_is_never_a_reminder() -> None:
    found = steps(ALERT, {"id": "later", "update": "alert", "after": "1h"},
                  {"id": "withdraw", "cancel": "alert", "after": "2h"})
    assert reminder_number(found["later"], 0) is None and reminder_number(found["withdraw"], 0) is None
