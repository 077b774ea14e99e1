"""Time rules (finding 6): each datetime variable lies where its template says, at the moment of firing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.channels.registry import KINDS
from broadcaster.cli import main
from broadcaster.errors import TemplateError, VariableError
from broadcaster.templates.catalogue import Catalogue
from broadcaster.templates.times import TimeRule, check_times, relative_moment
from broadcaster.templates.variables import example_inputs, resolve
from tests.support import Reader
from tests.templates.support import DUBAI, PUBLIC_URL, SHIPPED_CHANNELS, SHIPPED_TEMPLATES, edit

CATALOGUE = Catalogue(SHIPPED_TEMPLATES, KINDS)
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=DUBAI)


def at(**delta: float) -> str:
    return (NOW + timedelta(**delta)).isoformat()


def refused(template_id: str, **values: str) -> VariableError:
    template = CATALOGUE.get(template_id)
    inputs = example_inputs(template, NOW.timestamp(), DUBAI)
    inputs.update({name: {"ar": v, "en": v} for name, v in values.items()})
    with pytest.raises(VariableError) as caught:
        resolve(template, CATALOGUE.gazetteer, inputs, DUBAI, now=NOW.timestamp())
    return caught.value


def accepted(template_id: str, **values: str) -> None:
    template = CATALOGUE.get(template_id)
    inputs = example_inputs(template, NOW.timestamp(), DUBAI)
    inputs.update({name: {"ar": v, "en": v} for name, v in values.items()})
    resolve(template, CATALOGUE.gazetteer, inputs, DUBAI, now=NOW.timestamp())


@pytest.mark.parametrize(("template", "name", "value", "says"), [
    ("flood_warning", "until", at(days=-365), "not in the future"),  # a warning "until" a year ago
    ("flood_warning", "until", at(minutes=-1), "not in the future"),
    ("flood_warning", "until", at(hours=169), "more than 168 hours ahead"),
    ("dust_storm", "until", at(), "not in the future"),
    ("earthquake", "occurred", at(days=30), "in the future"),  # an earthquake next month
    ("earthquake", "occurred", at(minutes=1), "in the future"),
    ("earthquake", "occurred", at(hours=-13), "more than 12 hours ago"),
    ("all_clear", "ended", at(hours=1), "in the future"),
    ("all_clear", "ended", at(hours=-25), "more than 24 hours ago"),
    ("road_closure", "ends", at(hours=-1), "not in the future"),
    ("road_closure", "starts", at(days=-31), "more than 720 hours ago"),
    ("road_closure", "starts", at(days=31), "more than 720 hours ahead"),
])
def test_a_time_outside_its_window_is_refused_naming_the_variable(template: str, name: str, value: str,
                                                                 says: str) -> None:
    error = refused(template, **{name: value})
    assert error.variable == name
    assert f"variable {name!r}" in str(error) and says in str(error), str(error)


def test_a_closure_that_ends_before_it_starts_is_refused() -> None:
    error = refused("road_closure", starts=at(days=2), ends=at(days=1))
    assert error.variable == "ends" and "not after 'starts'" in str(error)
    assert refused("road_closure", starts=at(days=1), ends=at(days=1)).variable == "ends"


@pytest.mark.parametrize(("template", "inside", "outside"), [
    ("flood_warning", {"until": at(minutes=1)}, {"until": at()}),
    ("flood_warning", {"until": at(hours=168)}, {"until": at(hours=168, minutes=1)}),
    ("earthquake", {"occurred": at()}, {"occurred": at(minutes=1)}),
    ("earthquake", {"occurred": at(hours=-12)}, {"occurred": at(hours=-12, minutes=-1)}),
    ("all_clear", {"ended": at(hours=-24)}, {"ended": at(hours=-24, minutes=-1)}),
    # An accident: closed since three hours, open again in two; it cannot reopen before it closed.
    ("road_closure", {"starts": at(hours=-3), "ends": at(hours=2)}, {"starts": at(hours=3), "ends": at(hours=2)}),
    ("road_closure", {"starts": at(days=20), "ends": at(days=21)}, {"starts": at(days=20), "ends": at(days=31)}),
    # A correction is never refused for its age within a year.
    ("cancel", {"original_sent": at(days=-300)}, {"original_sent": at(days=-367)}),
])
def test_a_time_just_inside_its_window_passes_and_just_outside_is_refused(template: str, inside: dict[str, str],
                                                                         outside: dict[str, str]) -> None:
    accepted(template, **inside)
    assert refused(template, **outside).variable in outside


RULES = {"starts": TimeRule("any", 48), "ends": TimeRule("future", 48, after="starts"),
         "occurred": TimeRule("past", 6)}


@settings(max_examples=300, deadline=None)
@given(starts=st.integers(-72 * 60, 72 * 60), ends=st.integers(-72 * 60, 72 * 60),
       occurred=st.integers(-12 * 60, 12 * 60))
def test_check_times_accepts_exactly_the_times_inside_their_rules(starts: int, ends: int, occurred: int) -> None:
    moments = {name: NOW + timedelta(minutes=m) for name, m in
               (("starts", starts), ("ends", ends), ("occurred", occurred))}
    expected = (abs(starts) <= 48 * 60 and 0 < ends <= 48 * 60 and ends > starts
                and -6 * 60 <= occurred <= 0)
    try:
        check_times(RULES, moments, NOW.timestamp(), DUBAI)
    except VariableError as exc:
        assert not expected, str(exc)
        assert exc.variable in RULES
        return
    assert expected


@pytest.mark.parametrize(("text", "expected"), [
    ("now", NOW), ("+6h", NOW + timedelta(hours=6)), ("-10m", NOW - timedelta(minutes=10)),
    ("+1d2h30m", NOW + timedelta(days=1, hours=2, minutes=30)),
    ("+1d 22:00", datetime(2026, 11, 24, 22, 0, tzinfo=DUBAI)),
    ("+2d 05:00", datetime(2026, 11, 25, 5, 0, tzinfo=DUBAI)),
])
def test_relative_examples(text: str, expected: datetime) -> None:
    assert relative_moment(text, NOW.timestamp(), DUBAI) == expected


@pytest.mark.parametrize("text", ["+", "+6x", "tomorrow", "+1d 25:00", "6h", "+-1h"])
def test_a_relative_example_that_cannot_be_read_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"relative time|time of day"):
        relative_moment(text, NOW.timestamp(), DUBAI)


@pytest.mark.parametrize(("old", "new", "says"), [
    ('when = "future"                 # a closure', 'when = "soon"                 # a closure', "when must be one of"),
    ("within_hours = 720\nafter", "within_hours = 0\nafter", "within_hours must be a number"),
    ("within_hours = 720\nafter", "within_hours = 100000\nafter", "within_hours must be a number"),
    ('after = "starts"', 'after = "opens"', "after = 'opens' must name another datetime variable"),
    ('after = "starts"', 'after = "ends"', "must name another datetime variable"),
    ('after = "starts"', 'after = "road"', "must name another datetime variable"),
    ('example = "+2d 05:00"', 'example = "in two days"', "neither a relative time"),
    ('example = "+2d 05:00"', 'example = "2026-11-25T05:00:00"', "neither a relative time"),
])
def test_a_badly_declared_time_rule_is_a_template_error(catalogue: Catalogue, old: str, new: str, says: str) -> None:
    edit(catalogue.path("road_closure"), old, new)
    with pytest.raises(TemplateError, match=says):
        catalogue.get("road_closure")


def test_every_datetime_variable_must_declare_when(catalogue: Catalogue) -> None:
    edit(catalogue.path("earthquake"), 'when = "past"', "")
    with pytest.raises(TemplateError, match="variable 'occurred': when must be one of future, past, any"):
        catalogue.get("earthquake")


def test_an_after_chain_that_loops_is_refused(catalogue: Catalogue) -> None:
    edit(catalogue.path("road_closure"), 'when = "any"                    # planned',
         'after = "ends"\nwhen = "any"                    # planned')
    with pytest.raises(TemplateError, match="chain comes back to itself"):
        catalogue.get("road_closure")


def test_only_datetime_variables_take_time_rules(catalogue: Catalogue) -> None:
    edit(catalogue.path("earthquake"), 'decimals = 1\n', 'decimals = 1\nwhen = "past"\n')
    with pytest.raises(TemplateError, match="when, within_hours and after are for datetime variables"):
        catalogue.get("earthquake")


def test_an_absolute_example_that_has_aged_is_a_problem_for_templates_check(catalogue: Catalogue) -> None:
    from broadcaster.templates.check import check_template
    from tests.templates.support import DEFAULT_TARGETS

    edit(catalogue.path("flood_warning"), 'example = "+6h"', 'example = "2026-11-23T18:00:00+04:00"')
    later = datetime(2026, 11, 24, 9, 0, tzinfo=DUBAI).timestamp()
    problems = check_template(catalogue.get("flood_warning"), catalogue.gazetteer, DUBAI, DEFAULT_TARGETS, now=later,
                              public_url=PUBLIC_URL)
    assert any(p.startswith("examples: variable 'until'") and "not in the future" in p for p in problems), problems


# --- the command line -------------------------------------------------------------------------------------

def cli(tmp_path: Path, *args: str) -> int:
    return main(["--config", str(SHIPPED_CHANNELS), "--db", str(tmp_path / "t.db"), *args])


def in_dubai(**delta: float) -> str:
    return (datetime.now(DUBAI) + timedelta(**delta)).replace(microsecond=0).isoformat()


@pytest.mark.parametrize(("template", "variables", "name"), [
    ("flood_warning", ["level=warning", "area=DXB-HATTA", f"until={in_dubai(days=-365)}"], "until"),
    ("earthquake", ["magnitude=5.4", "area=DXB", f"occurred={in_dubai(days=30)}"], "occurred"),
    ("road_closure", ["road=E11", "reason=accident", f"starts={in_dubai(days=2)}", f"ends={in_dubai(days=1)}",
                      "detour.ar=شارع الخيل", "detour.en=Al Khail Road"], "ends"),
])
@pytest.mark.parametrize("command", ["preview", "fire"])
def test_the_cli_refuses_a_time_outside_its_rule_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str, variables: list[str], name: str, command: str
) -> None:
    mode = ["--dry-run"] if command == "fire" else []
    args = [arg for v in variables for arg in ("--var", v)]
    assert cli(tmp_path, command, template, *args, *mode) == 2
    err = capsys.readouterr().err
    assert f"variable {name!r}" in err and "nothing was sent" in err
    if command == "fire":
        assert Reader(tmp_path / "t.db").alerts() == []


@pytest.mark.parametrize("template", CATALOGUE.ids())
def test_use_examples_fires_every_shipped_template_with_times_inside_their_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str
) -> None:
    assert cli(tmp_path, "fire", template, "--use-examples", "--dry-run", "--json") == 0, capsys.readouterr().err
    alert_id = json.loads(capsys.readouterr().out)["alert_id"]
    alert = Reader(tmp_path / "t.db").alert(alert_id)
    sent = datetime.fromtimestamp(alert.sent_at, DUBAI)
    declared = CATALOGUE.get(template)
    for variable in declared.variables:
        if variable.time is None:
            continue
        moment = datetime.fromisoformat(alert.inputs[variable.name]["en"])
        rule = variable.time
        assert abs(moment - sent) <= timedelta(hours=rule.within_hours), variable.name
        assert rule.when != "future" or moment > sent, variable.name
        assert rule.when != "past" or moment <= sent, variable.name
        if rule.after:
            assert moment > datetime.fromisoformat(alert.inputs[rule.after]["en"]), variable.name
