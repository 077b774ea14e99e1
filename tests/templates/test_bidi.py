"""Values keep their order in both directions, checked with a real UAX #9 implementation (python-bidi).

``get_display`` gives a line in visual order, left to right; an Arabic reader reads it from
the right. A value in the Arabic text is isolated right-to-left (RLI … PDI) and one in the
English text left-to-right (LRI … PDI), so "E311 ثم المخرج 42" reads "E311" first in Arabic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from bidi import get_base_level, get_display
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.channels.registry import KINDS
from broadcaster.cli import main
from broadcaster.errors import VariableError
from broadcaster.templates.catalogue import LANGUAGES, Catalogue, Template
from broadcaster.templates.content import script_problem
from broadcaster.templates.render import FSI, LRI, PDI, RLI, fill, inert_isolates_dropped, isolate, render_forms
from broadcaster.templates.variables import Values, example_inputs, resolve
from broadcaster.text.lengths import sms_encoding
from tests.templates.support import DUBAI, SHIPPED_CHANNELS, SHIPPED_TEMPLATES, render_kind

CATALOGUE = Catalogue(SHIPPED_TEMPLATES, KINDS)
ROAD = CATALOGUE.get("road_closure")
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=DUBAI).timestamp()
MIXED = {"ar": "E311 ثم المخرج 42", "en": "E311 then exit 42"}
ISOLATE_CONTROLS = re.compile("[\u2066-\u2069]")


def run(template: Template, **overrides: Mapping[str, str]) -> Values:
    inputs = {**example_inputs(template, NOW, DUBAI), **{k: dict(v) for k, v in overrides.items()}}
    return resolve(template, CATALOGUE.gazetteer, inputs, DUBAI, now=NOW)


def reading_order(line: str) -> list[str]:
    """The words of an RTL line as an Arabic reader meets them: its visual words from the right.

    Each visual word is turned back to its logical spelling (Arabic letters come out of
    ``get_display`` reversed), so the list can be compared with the words as typed; the
    sentence's own punctuation (":", ".", "،") is left out.
    """
    visual = ISOLATE_CONTROLS.sub("", get_display(line))
    words = [w.strip(".:،") for w in visual.split()]
    return [w[::-1] if re.search("[\u0600-\u06ff]", w) else w for w in reversed(words) if w.strip(".:،")]


# --- the finding: a Latin-led value inside Arabic ----------------------------------------------------------


def test_a_latin_led_value_reads_in_its_own_order_inside_the_arabic_sentence() -> None:
    forms = render_forms(ROAD, run(ROAD, detour=MIXED).display, exercise=False)
    line = forms["ar"]["short"]
    assert f"{RLI}{MIXED['ar']}{PDI}" in line
    words = reading_order(line)
    start = words.index("E311")
    # The Arabic reader meets the detour as typed: E311, then "ثم المخرج 42".
    assert words[start - 2:start + 4] == ["المسار", "البديل", "E311", "ثم", "المخرج", "42"], words
    # The bug, shown by the same reference: a first-strong isolate follows the value's first letter (E),
    # so the value ran left to right and the Arabic reader met "E311" last.
    fsi = reading_order(line.replace(f"{RLI}{MIXED['ar']}", f"{FSI}{MIXED['ar']}"))
    assert fsi[start - 2:start + 4] == ["المسار", "البديل", "ثم", "المخرج", "42", "E311"], fsi
    # Its display is exactly the value's own right-to-left display: nothing leaks in or out.
    assert get_display(f"{RLI}{MIXED['ar']}{PDI}", base_dir="R").strip(RLI + PDI) in get_display(line)


def test_values_are_isolated_rtl_in_arabic_and_ltr_in_english() -> None:
    values = run(ROAD, detour=MIXED)
    forms = render_forms(ROAD, values.display, exercise=False)
    for name in ("road", "reason", "starts", "ends", "detour"):
        for lang, opener in (("ar", RLI), ("en", LRI)):
            assert f"{opener}{values.display[name][lang]}{PDI}" in forms[lang]["long"], (name, lang)
    assert FSI not in forms["ar"]["long"] + forms["en"]["long"]
    assert LRI not in forms["ar"]["long"] and RLI not in forms["en"]["long"]
    # A value that opens a form (the flood headline starts with {level}) does not decide its direction:
    # UAX #9 skips isolates when it picks a paragraph's direction. Every shipped text keeps its own.
    for template in map(CATALOGUE.get, CATALOGUE.ids()):
        shipped = render_forms(template, run(template).display, exercise=False)
        for lang, level in (("ar", 1), ("en", 0)):
            for form, text in shipped[lang].items():
                assert RLI in text or LRI in text, (template.id, lang, form)
                for paragraph in filter(None, text.splitlines()):
                    assert get_base_level(paragraph) == level, (template.id, form, paragraph)
    # An optional value left out adds nothing, not an empty isolate.
    assert isolate("", "ar") == "" and fill("a {x} b", {"x": {"ar": "", "en": ""}}, "ar") == "a  b"


ARABIC_WORDS = st.sampled_from(["شارع", "الخيل", "ثم", "المخرج", "جسر", "القرهود", "طريق"])
LATIN_WORDS = st.sampled_from(["E311", "E11", "Exit", "42", "5", "Al", "Khail", "(2)", "A-B"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(ARABIC_WORDS, LATIN_WORDS), min_size=1, max_size=6))
def test_any_mixed_value_displays_inside_arabic_exactly_as_it_would_alone(words: list[str]) -> None:
    value = " ".join(words)
    line = fill("المسار البديل: {detour}، ثم اتبع التحويلات.", {"detour": {"ar": value, "en": ""}}, "ar")
    alone = get_display(value, base_dir="R")
    assert alone in ISOLATE_CONTROLS.sub("", get_display(line))
    assert get_base_level(line) == 1


# --- the Arabic slot holds Arabic --------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["Al Khail Road", "E311", "42", "E311 (exit 42)"])
def test_the_arabic_slot_without_an_arabic_letter_is_refused_naming_variable_and_language(typed: str) -> None:
    with pytest.raises(VariableError) as caught:
        run(ROAD, detour={"ar": typed, "en": "Al Khail Road"})
    message = str(caught.value)
    assert caught.value.variable == "detour"
    assert "variable 'detour' (ar)" in message and "no Arabic letter" in message, message
    assert "detour.ar" in message and "detour.en" in message
    # A proper noun with digits or Latin letters inside Arabic is Arabic text all the same.
    assert run(ROAD, detour=MIXED).display["detour"] == MIXED


@given(st.text(alphabet="abcXYZ0123456789 .,-()", min_size=1, max_size=30).filter(str.strip))
def test_no_arabic_letter_means_refused_one_arabic_letter_means_accepted(text: str) -> None:
    assert script_problem(text, "ar") is not None
    assert script_problem(text + " ب", "ar") is None
    assert script_problem(text, "en") is None
    assert all(script_problem(place.name("ar"), "ar") is None for place in CATALOGUE.gazetteer.of_type(None))


@pytest.mark.parametrize("command", ["preview", "fire"])
def test_the_cli_refuses_english_in_the_arabic_slot_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    soon = datetime.now(DUBAI).replace(microsecond=0) + timedelta(hours=1)
    later = soon + timedelta(hours=2)
    args = ["road=E11", "reason=accident", f"starts={soon.isoformat()}", f"ends={later.isoformat()}",
            "detour=Al Khail Road"]
    mode = ["--dry-run"] if command == "fire" else []
    code = main(["--config", str(SHIPPED_CHANNELS), "--db", str(tmp_path / "t.db"), command, "road_closure",
                 *[a for v in args for a in ("--var", v)], *mode])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "variable 'detour' (ar)" in err and "no Arabic letter" in err and "nothing was sent" in err


# --- lengths and encodings ------------------------------------------------------------------------------


def test_an_english_sms_stays_gsm7_and_the_arabic_one_keeps_its_isolates() -> None:
    forms = render_forms(ROAD, run(ROAD, detour=MIXED).display, exercise=False)
    sms_ar, sms_en = render_kind("sms", forms, LANGUAGES)
    assert RLI in sms_ar.text and sms_ar.text == forms["ar"]["short"]  # counted, never dropped
    assert sms_en.encoding == "GSM-7" and sms_encoding(sms_en.text) == "GSM-7"
    assert sms_en.text == forms["en"]["short"].replace(LRI, "").replace(PDI, "")
    # Other kinds carry the English isolates (a combined message puts English next to Arabic).
    [x_en] = render_kind("x", forms, ("en",))
    assert LRI in x_en.text


def test_isolates_are_dropped_only_where_nothing_is_right_to_left() -> None:
    assert inert_isolates_dropped(f"Closed: {LRI}E11{PDI}.") == "Closed: E11."
    kept = f"مغلق: {RLI}E11{PDI}. Closed: {LRI}E11{PDI}."
    assert inert_isolates_dropped(kept) == kept
