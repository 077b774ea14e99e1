"""What a follow-up says first: "تحديث: / Update:", and each reminder its count (broadcaster.templates.render)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.templates.render import (
    EXERCISE_MARKER,
    REMINDERS_WORST,
    UPDATE_MARKER,
    follow_up_markers,
    mark,
    reminder_marker,
    shown_once,
)

FORMS = {"ar": {"headline": "إغلاق شارع", "short": "إغلاق شارع.", "long": "إغلاق شارع.\n"},
         "en": {"headline": "Road closed", "short": "Road closed.", "long": "Road closed.\n"}}


def test_the_first_reminders_are_ordinal_words_as_an_authority_writes_them() -> None:
    assert [reminder_marker(n)["ar"] for n in (1, 2, 3, 10, 11, 12, 20)] == [
        "التذكير الأول:", "التذكير الثاني:", "التذكير الثالث:", "التذكير العاشر:", "التذكير الحادي عشر:",
        "التذكير الثاني عشر:", "التذكير العشرون:"]
    assert [reminder_marker(n)["en"] for n in (1, 2, 3, 12, 20)] == [
        "First reminder:", "Second reminder:", "Third reminder:", "Twelfth reminder:", "Twentieth reminder:"]
    assert reminder_marker(21) == {"ar": "التذكير رقم 21:", "en": "Reminder no. 21:"}


@given(st.integers(min_value=1, max_value=REMINDERS_WORST), st.integers(min_value=1, max_value=REMINDERS_WORST))
def test_every_reminder_count_reads_differently_with_western_digits(a: int, b: int) -> None:
    first, second = reminder_marker(a), reminder_marker(b)
    for lang in ("ar", "en"):
        assert (first[lang] == second[lang]) == (a == b)
        assert not re.search(r"[\u0660-\u0669\u06f0-\u06f9]", first[lang])  # Western digits only
        assert first[lang].endswith(":")
    assert not re.search(r"[A-Za-z]", first["ar"])


def test_a_reminder_is_counted_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        reminder_marker(0)


def test_the_marker_starts_every_form_and_follows_an_exercise_marker() -> None:
    marked = mark(FORMS, UPDATE_MARKER)
    assert all(text.startswith(UPDATE_MARKER[lang] + " ") for lang in marked for text in marked[lang].values())
    drill = {lang: {form: f"{EXERCISE_MARKER[lang]} {text}" for form, text in by_form.items()}
             for lang, by_form in FORMS.items()}
    assert mark(drill, UPDATE_MARKER)["ar"]["short"] == "[تمرين] تحديث: إغلاق شارع."
    assert mark(drill, reminder_marker(2))["en"]["headline"] == "[EXERCISE] Second reminder: Road closed"
    assert mark(FORMS, None) is FORMS


def test_templates_check_measures_the_longest_marker_there_is() -> None:
    markers = follow_up_markers()
    assert UPDATE_MARKER in markers and reminder_marker(REMINDERS_WORST) in markers
    longest_en = max((m["en"] for m in markers), key=len)
    assert all(len(reminder_marker(n)["en"]) <= len(longest_en) for n in range(1, REMINDERS_WORST + 1, 997))
    longest_ar = max((m["ar"] for m in markers), key=len)
    assert all(len(reminder_marker(n)["ar"]) <= len(longest_ar) for n in range(1, REMINDERS_WORST + 1, 997))


@pytest.mark.parametrize(("headline", "body", "shown"), [
    ("Update: A closed", "Update: A will close", "A will close"),
    ("[EXERCISE] Second reminder: A", "[EXERCISE] Second reminder: B", "B"),
    ("[تمرين] التذكير الحادي عشر: أ", "[تمرين] التذكير الحادي عشر: ب", "ب"),
    ("التذكير رقم 21: أ", "التذكير رقم 21: ب", "ب"),
    ("Reminder no. 21: A", "Reminder no. 21: B", "B"),
    ("[EXERCISE] A", "[EXERCISE] B", "B"),
    ("A closed", "Update: the text itself", "Update: the text itself"),  # no marker on the headline: kept
])
def test_a_kind_that_joins_headline_and_text_shows_the_markers_once(headline: str, body: str, shown: str) -> None:
    """Before, Telegram, Facebook and email said "تحديث:" on the headline and again at the start of the text."""
    assert shown_once(headline, body) == shown
