"""Dates and times people and files give: ISO 8601 with an offset, inside 2000-2099 (UTC), or a clear refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.timefmt import EARLIEST, LATEST, MomentError, moment_of, parse_moment, shifted

DUBAI = ZoneInfo("Asia/Dubai")


@pytest.mark.parametrize("text", [
    "0001-01-01T00:00:00+04:00",  # valid for Python, overflows once moved to UTC
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59-04:00",  # overflows the other way
    "9999-12-31T23:59:59+00:00",
    "1999-12-31T23:59:59+00:00",
    "2100-01-01T00:00:00+00:00",
    "1970-01-01T00:00:00+00:00",
])
def test_a_moment_outside_the_years_2000_to_2099_is_refused_naming_it(text: str) -> None:
    with pytest.raises(MomentError) as caught:
        parse_moment(text)
    assert repr(text) in str(caught.value)
    assert "between the years 2000 and 2099" in str(caught.value)


def test_the_edges_of_the_range() -> None:
    assert parse_moment("2000-01-01T00:00:00+00:00") == EARLIEST
    assert parse_moment("2100-01-01T03:59:59+04:00") < LATEST  # 2099-12-31T23:59:59 UTC
    with pytest.raises(MomentError):
        parse_moment("2000-01-01T03:59:59+04:00")  # 1999 in UTC


def test_shifting_or_reading_a_timestamp_past_the_range_is_refused() -> None:
    start = parse_moment("2099-12-31T12:00:00+00:00")
    with pytest.raises(MomentError, match="'in two days'"):
        shifted(start, 2 * 86400, "in two days")
    with pytest.raises(MomentError, match="'huge'"):
        shifted(start, 1e300, "huge")  # timedelta itself overflows
    with pytest.raises(MomentError, match="'never'"):
        moment_of(1e300, DUBAI, "never")
    assert moment_of(1_800_000_000, DUBAI, "now").tzinfo is DUBAI


offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
any_moment = st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets)
texts = st.one_of(any_moment, st.text(max_size=40), any_moment.map(lambda t: t[:19]))


@settings(max_examples=300, deadline=None)
@given(texts)
def test_parse_moment_returns_a_usable_moment_or_says_why_not(text: str) -> None:
    """Never another exception: whatever it returns converts to UTC, a timestamp and back, without overflow."""
    try:
        moment = parse_moment(text)
    except MomentError as exc:
        assert repr(text) in str(exc)
        return
    assert EARLIEST <= moment.astimezone(UTC) < LATEST
    back = datetime.fromtimestamp(moment.timestamp(), DUBAI)
    assert back == moment
    assert back.astimezone(timezone(timedelta(hours=-23, minutes=-59))).year >= 1999
