"""Reading runbooks: durations, times, references and inputs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.runbooks.durations import DurationError, format_duration, parse_duration, resolve_datetime
from broadcaster.runbooks.inputs import resolve_inputs, step_vars
from broadcaster.runbooks.model import load_runbook
from broadcaster.runbooks.refs import RunbookError, parse_ref
from tests.runbooks.conftest import BASE, write_runbook

DUBAI = ZoneInfo("Asia/Dubai")


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1d 6h", 108000),
    ("PT2H", 7200), ("P1D", 86400), ("P1DT6H", 108000), ("PT1M30S", 90), ("0m", 0),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-2h", "2 hours", "h", "", "P", "PT", "2x", "1.5h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_a_number_is_not_a_duration() -> None:
    with pytest.raises(DurationError, match="as a string"):
        parse_duration(7200)


@given(st.integers(min_value=0, max_value=400 * 86400))
def test_format_then_parse_is_the_identity(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=12))
def test_parse_duration_never_crashes_and_is_never_negative(text: str) -> None:
    try:
        value = parse_duration(text)
    except DurationError:
        return
    assert value >= 0


def test_relative_datetimes_resolve_against_the_start() -> None:
    start = datetime(2026, 11, 22, 23, 30, tzinfo=DUBAI).timestamp()
    assert resolve_datetime("now", start, DUBAI).isoformat() == "2026-11-22T23:30:00+04:00"
    assert resolve_datetime("+2h", start, DUBAI).isoformat() == "2026-11-23T01:30:00+04:00"
    assert resolve_datetime("-15m", start, DUBAI).isoformat() == "2026-11-22T23:15:00+04:00"
    assert resolve_datetime("+1d 22:00", start, DUBAI).isoformat() == "2026-11-23T22:00:00+04:00"
    assert resolve_datetime("2026-12-01T08:00:00+00:00", start, DUBAI).isoformat() == "2026-12-01T12:00:00+04:00"
    with pytest.raises(DurationError, match="no UTC offset"):
        resolve_datetime("2026-12-01T08:00:00", start, DUBAI)
    with pytest.raises(DurationError, match="not a time of day"):
        resolve_datetime("+1d 25:00", start, DUBAI)


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+04:00", "9999-12-31T23:59:59-04:00", "+999999d 22:00", "-99999d", "+3654d",
    "+" + "9" * 5000 + "d", "+٣h",
])
def test_times_past_the_dates_the_system_handles_are_refused(text: str) -> None:
    start = datetime(2026, 11, 22, 23, 30, tzinfo=DUBAI).timestamp()
    with pytest.raises(DurationError):
        resolve_datetime(text, start, DUBAI)


def test_a_duration_over_ten_years_is_refused_saying_so() -> None:
    assert parse_duration("3653d") == 3653 * 86400
    with pytest.raises(DurationError, match="longer than ten years"):
        parse_duration("3654d")
    with pytest.raises(DurationError, match="longer than ten years"):
        parse_duration("P99999W")


relative = st.one_of(
    st.just("now"),
    st.builds(lambda sign, n, unit: f"{sign}{n}{unit}", st.sampled_from("+-"), st.integers(0, 10**12),
              st.sampled_from("dhms")),
    st.builds(lambda n, h, m: f"+{n}d {h}:{m:02d}", st.integers(0, 10**7), st.integers(0, 30), st.integers(0, 70)),
    st.text(max_size=20),
)


@given(text=relative, start=st.floats(min_value=946684800, max_value=4102444799))
def test_resolve_datetime_gives_a_moment_in_range_or_says_why_not(text: str, start: float) -> None:
    try:
        moment = resolve_datetime(text, start, DUBAI)
    except DurationError:
        return
    assert 2000 <= moment.astimezone(UTC).year <= 2099
    moment.timestamp()


def test_references() -> None:
    ref = parse_ref("{input:starts-1d}", "here")
    assert (ref.source, ref.name, ref.offset_s) == ("input", "starts", -86400)
    assert parse_ref("{ now + 6h }", "here").offset_s == 21600
    with pytest.raises(RunbookError, match="not a reference"):
        parse_ref("{input:Starts}", "here")


def test_inputs_take_examples_only_when_asked(tmp_path: Path) -> None:
    runbook = load_runbook(write_runbook(tmp_path, BASE))
    start = datetime(2026, 11, 22, 8, 0, tzinfo=DUBAI).timestamp()
    inputs = resolve_inputs(runbook, {}, start=start, tz=DUBAI, use_examples=True)
    assert inputs["until"] == {"ar": "2026-11-22T14:00:00+04:00", "en": "2026-11-22T14:00:00+04:00"}
    with pytest.raises(RunbookError, match="no value given: --input area"):
        resolve_inputs(runbook, {"until": {"ar": "+1h", "en": "+1h"}}, start=start, tz=DUBAI, use_examples=False)
    with pytest.raises(RunbookError, match="has no input 'colour'"):
        resolve_inputs(runbook, {"colour": {"ar": "x", "en": "x"}}, start=start, tz=DUBAI, use_examples=True)
    step = runbook.steps[2]
    values = step_vars(step, inputs, now=start + 3600, tz=DUBAI)
    assert values["ended"]["en"] == "2026-11-22T09:00:00+04:00"
    assert values["area"] == {"ar": "DXB-HATTA", "en": "DXB-HATTA"}


@pytest.mark.parametrize(("old", "new", "message"), [
    ('id = "watch"', 'id = "Watch"', "lower_snake_case"),
    ('template = "flood_warning"', 'template = "flood_warning"\nupdate = "x"', "exactly one action"),
    ('[[steps]]\nid = "warning"', '[[steps]]\nid = "watch"', "used twice"),
    ('confirm = true', 'confirm = "yes"', "true or false"),
    ('after = "3h"', 'after = "3h"\ncolour = "red"', r"unknown key\(s\): colour"),
    ('update = "watch"', 'update = "watch"\nchannels = "all"', "remove 'channels'"),
    ('example = "+6h"', 'example = "tomorrow"', "not an ISO 8601"),
])
def test_structure_errors_name_file_and_step(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = write_runbook(tmp_path, BASE.replace(old, new, 1))
    with pytest.raises(RunbookError, match=message) as info:
        load_runbook(path)
    assert str(path) in str(info.value)


def test_a_runbook_path_that_is_a_folder_or_not_utf8_is_a_runbook_error(tmp_path: Path) -> None:
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(RunbookError, match="runbook file is a folder, not a file"):
        load_runbook(tmp_path / "folder.toml")
    latin = tmp_path / "latin.toml"
    latin.write_bytes(BASE.encode() + "\n# Caf\u00e9\n".encode("latin-1"))
    with pytest.raises(RunbookError, match=r"byte 0xE9 is not UTF-8; the runbook file must be UTF-8 text"):
        load_runbook(latin)


def test_every_missing_or_bad_input_is_named_at_once(tmp_path: Path) -> None:
    """Issue 15: one error names every missing input (with its example) and every bad value, not one a run."""
    runbook = load_runbook(write_runbook(tmp_path, BASE))
    start = datetime(2026, 11, 22, 8, 0, tzinfo=DUBAI).timestamp()
    with pytest.raises(RunbookError) as caught:
        resolve_inputs(runbook, {}, start=start, tz=DUBAI, use_examples=False)
    assert "no value given for inputs area, until: give each with --input NAME=VALUE" in str(caught.value)
    assert "(examples: area=DXB-HATTA, until=+6h)" in str(caught.value)
    assert "input '" not in str(caught.value)  # about the inputs as a whole (the API's field "inputs")
    with pytest.raises(RunbookError) as caught:
        resolve_inputs(runbook, {"until": {"ar": "soonish", "en": "soonish"}}, start=start, tz=DUBAI,
                       use_examples=False)
    assert "no value given for inputs area" in str(caught.value) and "until: " in str(caught.value)
    with pytest.raises(RunbookError, match="has no input 'colour', 'size'"):
        resolve_inputs(runbook, {"colour": {"en": "x"}, "size": {"en": "x"}}, start=start, tz=DUBAI,
                       use_examples=True)
