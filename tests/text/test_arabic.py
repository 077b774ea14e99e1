"""Arabic counts (the six plural categories) and 12-hour times with Western digits."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.text.arabic import NOUNS, PluralForm, count, plural_form, time_ar, time_en

DUBAI = ZoneInfo("Asia/Dubai")


@pytest.mark.parametrize(("n", "expected"), [
    (0, "0 قناة"), (1, "قناة واحدة"), (2, "قناتان"), (3, "3 قنوات"), (10, "10 قنوات"), (11, "11 قناةً"),
    (99, "99 قناةً"), (100, "100 قناة"), (101, "101 قناة"), (102, "102 قناة"), (103, "103 قنوات"),
    (111, "111 قناةً"), (1000, "1000 قناة"), (1003, "1003 قنوات"),
])
def test_channels_are_counted_as_arabic_counts_them(n: int, expected: str) -> None:
    assert count(n, "channel") == expected


def test_every_noun_has_its_one_two_few_and_many_forms() -> None:
    assert [count(n, "message") for n in (1, 2, 5, 12)] == ["رسالة واحدة", "رسالتان", "5 رسائل", "12 رسالةً"]
    assert [count(n, "recipient") for n in (1, 2, 5, 12)] == ["مستلم واحد", "مستلمان", "5 مستلمين", "12 مستلماً"]
    assert [count(n, "retry") for n in (1, 2, 3, 40)] == ["إعادة واحدة", "إعادتان", "3 إعادات", "40 إعادةً"]


@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(sorted(NOUNS)))
def test_a_count_has_western_digits_and_its_category_depends_on_the_last_two_digits(n: int, noun: str) -> None:
    text = count(n, noun)
    assert not any("\u0660" <= c <= "\u0669" for c in text)  # never Arabic-Indic digits
    form = plural_form(n)
    if form in (PluralForm.ONE, PluralForm.TWO):
        assert not any(c.isdigit() for c in text)
    else:
        assert text.startswith(f"{n} ")
    if n >= 100:
        assert plural_form(n) == plural_form(n % 100 + 100)


def test_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="-1"):
        plural_form(-1)


def test_times_read_day_month_year_and_a_12_hour_clock() -> None:
    afternoon = datetime(2026, 11, 30, 11, 56, tzinfo=UTC).timestamp()  # 15:56 in Dubai
    assert time_ar(afternoon, DUBAI) == "30/11/2026 3:56 مساءً"
    assert time_en(afternoon, DUBAI) == "30/11/2026 3:56 PM"
    midnight = datetime(2026, 11, 30, 20, 5, tzinfo=UTC).timestamp()  # 00:05 on 1 December in Dubai
    assert time_ar(midnight, DUBAI) == "01/12/2026 12:05 صباحاً"
    noon = datetime(2026, 11, 30, 8, 0, tzinfo=UTC).timestamp()
    assert time_ar(noon, DUBAI) == "30/11/2026 12:00 مساءً"
