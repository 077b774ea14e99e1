"""Variable values are checked before anything renders; every error names the variable."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.channels.registry import KINDS
from broadcaster.errors import VariableError
from broadcaster.templates.catalogue import Catalogue, Template
from broadcaster.templates.render import LRI, PDI, RLI, render_forms
from broadcaster.templates.variables import (
    BIDI_CONTROLS,
    Values,
    check_text,
    example_inputs,
    parse_var_args,
    resolve,
)
from broadcaster.text.lengths import sms_encoding
from tests.templates.support import DUBAI, SHIPPED_TEMPLATES, render_kind

CATALOGUE = Catalogue(SHIPPED_TEMPLATES, KINDS)
ROAD = CATALOGUE.get("road_closure")
FLOOD = CATALOGUE.get("flood_warning")
QUAKE = CATALOGUE.get("earthquake")
BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
NOW = datetime(2026, 11, 23, 16, 0, tzinfo=DUBAI).timestamp()  # the moment these values are checked at


def run(template: Template, **overrides: str | Mapping[str, str]) -> Values:
    """Resolve the template's examples with some values replaced (a str sets both languages)."""
    inputs = example_inputs(template, NOW, DUBAI)
    for name, value in overrides.items():
        inputs[name] = {"ar": value, "en": value} if isinstance(value, str) else dict(value)
    return resolve(template, CATALOGUE.gazetteer, inputs, DUBAI, now=NOW)


def refused(template: Template, name: str, **overrides: str | Mapping[str, str]) -> str:
    """The error message for a rejected value; it must name the variable."""
    with pytest.raises(VariableError) as caught:
        run(template, **overrides)
    message = str(caught.value)
    assert f"'{name}'" in message, message
    return message


def test_the_examples_resolve() -> None:
    values = run(ROAD)
    assert values.display["road"] == {"ar": "شارع الشيخ زايد", "en": "Sheikh Zayed Road"}
    assert values.display["reason"] == {"ar": "أعمال صيانة", "en": "maintenance works"}
    assert values.inputs["road"] == {"ar": "E11", "en": "E11"}
    assert "DXB-MARINA" in values.areas


# --- required and lengths ---------------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["", "   "])
def test_an_empty_required_text_variable_is_refused(empty: str) -> None:
    message = refused(ROAD, "detour", detour=empty)
    assert "required" in message


def test_an_empty_required_place_is_refused() -> None:
    assert "required" in refused(ROAD, "road", road="")


def test_a_text_variable_needs_both_languages() -> None:
    message = refused(ROAD, "detour", detour={"ar": "شارع الخيل"})
    assert "en" in message and "--var detour.en=" in message


def test_an_optional_variable_may_be_left_empty(catalogue: Catalogue) -> None:
    path = catalogue.path("road_closure")
    path.write_text(path.read_text(encoding="utf-8").replace(
        'name = "detour"\ntype = "text"\nmax_length = 40\nrequired = true',
        'name = "detour"\ntype = "text"\nmax_length = 40\nrequired = false'), encoding="utf-8")
    template = catalogue.get("road_closure")
    inputs = example_inputs(template, NOW, DUBAI)
    del inputs["detour"]
    values = resolve(template, catalogue.gazetteer, inputs, DUBAI, now=NOW)
    assert values.display["detour"] == {"ar": "", "en": ""}


def test_a_10_kb_text_value_names_the_variable_and_the_maximum() -> None:
    message = refused(ROAD, "detour", detour={"ar": "شارع الخيل", "en": "A" * 10_240})
    assert "10240 characters" in message
    assert "maximum is 40" in message
    assert "(en)" in message


def test_a_10_kb_arabic_value_is_refused_before_any_other_check() -> None:
    message = refused(ROAD, "detour", detour={"ar": "ب" * 10_000 + "\u202e", "en": "Al Khail Road"})
    assert "10001 characters" in message and "maximum is 40" in message


def test_a_10_kb_place_code_is_refused() -> None:
    message = refused(ROAD, "road", road="E" * 10_240)
    assert "10240 characters" in message


def test_a_value_at_max_length_is_accepted() -> None:
    values = run(ROAD, detour={"ar": "ب" * 40, "en": "W" * 40})
    assert values.display["detour"] == {"ar": "ب" * 40, "en": "W" * 40}


def test_a_value_one_over_max_length_is_refused() -> None:
    assert "41 characters" in refused(ROAD, "detour", detour={"ar": "ب" * 41, "en": "Al Khail Road"})


def test_an_unknown_variable_is_refused() -> None:
    inputs = {**example_inputs(ROAD, NOW, DUBAI), "lane": {"ar": "x", "en": "x"}}
    with pytest.raises(VariableError, match=r"unknown variable 'lane'.*detour, ends, reason, road, starts"):
        resolve(ROAD, CATALOGUE.gazetteer, inputs, DUBAI, now=NOW)


# --- injection --------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", BIDI, ids=[f"U+{c:04X}" for c in BIDI])
@pytest.mark.parametrize("lang", ["ar", "en"])
def test_bidi_controls_are_refused(code: int, lang: str) -> None:
    detour = {"ar": "شارع الخيل", "en": "Al Khail Road"}
    detour[lang] = detour[lang][:4] + chr(code) + detour[lang][4:]
    message = refused(ROAD, "detour", detour=detour)
    assert f"U+{code:04X}" in message
    assert "bidi" in message


@pytest.mark.parametrize("code", BIDI, ids=[f"U+{c:04X}" for c in BIDI])
def test_bidi_controls_are_refused_in_a_place_code(code: int) -> None:
    assert f"U+{code:04X}" in refused(ROAD, "road", road="E1" + chr(code) + "1")


@pytest.mark.parametrize("char", ["\u200b", "\u200d", "\u2060", "\ufeff", "\x00", "\x1b", "\n", "\t", "\u2028"])
def test_invisible_and_control_characters_are_refused(char: str) -> None:
    refused(ROAD, "detour", detour={"ar": "شارع الخيل", "en": f"Al Khail{char}Road"})


@pytest.mark.parametrize(
    "value",
    [
        "http://evil.example",
        "see https://evil.example/pay now",
        "HTTPS://EVIL.EXAMPLE",
        "ftp://files",
        "www.evil",
        "bit.ly",
        "use bit.ly/abc",
        "t.me/x",
        "join t.me/rta_official",
        "rta.gov.ae",
        "EVIL.COM",
        "xn--80ak6aa92e.com",
    ],
)
def test_links_are_refused(value: str) -> None:
    message = refused(ROAD, "detour", detour={"ar": "شارع الخيل", "en": value})
    assert "link" in message


@pytest.mark.parametrize("value", ["راجع bit.ly/x", "www.شرطة", "شرطة.امارات", "انضم t.me/x"])
def test_links_are_refused_in_arabic_text(value: str) -> None:
    message = refused(ROAD, "detour", detour={"ar": value, "en": "Al Khail Road"})
    assert "link" in message and "(ar)" in message


@pytest.mark.parametrize("value", ["U.A.E", "e.g. Al Khail", "Exit 5.5 km", "Road 44. Then left"])
def test_dots_that_are_not_links_are_accepted(value: str) -> None:
    assert run(ROAD, detour={"ar": "شارع الخيل", "en": value}).display["detour"]["en"] == value


@pytest.mark.parametrize("emoji", ["🚧", "⚠", "👍🏽", "🇦🇪", "❤️"])
def test_emoji_are_refused_with_a_clear_message(emoji: str) -> None:
    message = refused(ROAD, "detour", detour={"ar": "شارع الخيل", "en": f"Al Khail Road {emoji}"})
    assert "not allowed" in message
    assert "emoji" in message or "invisible" in message or "character" in message


def test_a_plain_emoji_is_called_an_emoji() -> None:
    message = refused(ROAD, "detour", detour={"ar": "شارع الخيل 🚧", "en": "Al Khail Road"})
    assert "an emoji or symbol '🚧' (U+1F6A7) is not allowed" in message


@pytest.mark.parametrize("value", ["Café Road", "Ｒｏａｄ", "Road £5", "Road [A]", "Road ~ 5"])
def test_english_text_outside_plain_gsm7_is_refused(value: str) -> None:
    assert "plain English" in refused(ROAD, "detour", detour={"ar": "شارع الخيل", "en": value})


# --- places, enums ----------------------------------------------------------------------------------


def test_a_place_not_in_the_gazetteer_is_refused() -> None:
    message = refused(ROAD, "road", road="E999")
    assert "'E999' is not a road in the gazetteer" in message
    assert "E11" in message  # suggestions


def test_a_road_given_for_an_area_variable_is_refused() -> None:
    message = refused(FLOOD, "area", area="E11")
    assert "'E11' is not a" in message and "area in the gazetteer" in message
    assert "DXB-DEIRA" in message  # suggestions are areas, not roads
    assert "E311" not in message


def test_an_area_given_for_a_road_variable_is_refused() -> None:
    assert "'DXB-DEIRA'" in refused(ROAD, "road", road="DXB-DEIRA")


def test_a_place_needs_one_value_for_both_languages() -> None:
    assert "both languages" in refused(ROAD, "road", road={"ar": "E11", "en": "E311"})


def test_a_place_renders_the_gazetteer_names_and_gives_the_areas() -> None:
    values = run(FLOOD, area="DXB-HATTA")
    assert values.display["area"] == {"ar": "حتا", "en": "Hatta"}
    assert values.areas == ("DXB-HATTA",)


def test_an_unknown_enum_choice_lists_the_choices() -> None:
    message = refused(ROAD, "reason", reason="roadworks")
    assert "maintenance, accident, event, flooding, security" in message


# --- datetimes --------------------------------------------------------------------------------------


def test_a_naive_datetime_is_refused_with_a_hint() -> None:
    message = refused(ROAD, "starts", starts="2026-11-23T22:00:00")
    assert "no UTC offset" in message
    assert "2026-11-23T22:00:00+04:00" in message


@pytest.mark.parametrize("value", ["tomorrow 10pm", "23/11/2026 22:00", "2026-13-01T00:00:00+04:00"])
def test_a_value_that_is_not_a_datetime_is_refused(value: str) -> None:
    assert "ISO 8601" in refused(ROAD, "starts", starts=value)


@pytest.mark.parametrize("value", [
    "0001-01-01T00:00:00+04:00", "9999-12-31T23:59:59-04:00", "9999-12-31T23:59:59+00:00",
    "1999-12-31T23:00:00+00:00", "2100-01-01T00:00:00+00:00",
])
def test_a_datetime_outside_the_years_2000_to_2099_is_refused(value: str) -> None:
    """Years 0001 and 9999 parse in Python, then overflow as soon as they are shown in Dubai time."""
    message = refused(ROAD, "starts", starts=value)
    assert value in message and "between the years 2000 and 2099" in message


@pytest.mark.parametrize("value", ["2026-11-23T18:00:00+00:00", "2026-11-23T18:00:00Z", "2026-11-23T19:00:00+01:00"])
def test_a_datetime_with_an_offset_renders_in_dubai_time_in_both_languages(value: str) -> None:
    values = run(ROAD, starts=value)
    en, ar = values.display["starts"]["en"], values.display["starts"]["ar"]
    assert en == "Monday 23 November 2026, 10:00 PM"
    # As UAE authorities write it: no comma inside the date, صباحاً/مساءً after a no-break space.
    assert ar == "الاثنين 23 نوفمبر 2026 الساعة 10:00\u00a0مساءً"
    assert "\u202f" not in en and "\u00a0" not in en
    assert sms_encoding(en) == "GSM-7"
    assert values.inputs["starts"]["en"].startswith("2026-11-23T")


def test_a_time_only_format_renders_the_local_time() -> None:
    values = run(QUAKE, occurred="2026-11-23T10:32:00+00:00")
    assert values.display["occurred"]["en"] == "2:32 PM"
    assert values.display["occurred"]["ar"] == "2:32\u00a0مساءً"
    morning = run(QUAKE, occurred="2026-11-23T07:05:00+00:00")  # 11:05 in Dubai
    assert morning.display["occurred"] == {"ar": "11:05\u00a0صباحاً", "en": "11:05 AM"}


# --- numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("10.5", "outside 0 to 10"), ("-1", "outside 0 to 10"),
                                                 ("5.45", "at most 1 decimal"), ("five", "not a number"),
                                                 ("5,4", "not a number"), ("1e1", "not a number")])
def test_a_bad_number_is_refused(value: str, expected: str) -> None:
    assert expected in refused(QUAKE, "magnitude", magnitude=value)


@pytest.mark.parametrize(("value", "display"), [("٥٫٤", "5.4"), ("٥.٤", "5.4"), ("۵.۴", "5.4"), ("٧", "7.0"),
                                                ("10", "10.0"), ("0", "0.0")])
def test_numbers_accept_arabic_indic_digits(value: str, display: str) -> None:
    values = run(QUAKE, magnitude=value)
    assert values.display["magnitude"] == {"ar": display, "en": display}
    assert float(values.inputs["magnitude"]["en"]) == float(display)


# --- mixed direction --------------------------------------------------------------------------------


def test_mixed_direction_text_is_accepted_and_isolated_in_the_direction_of_its_text() -> None:
    detour = {"ar": "شارع E311 ثم مخرج 5", "en": "E311 then exit 5"}
    values = run(ROAD, detour=detour)
    assert values.display["detour"] == detour
    forms = render_forms(ROAD, values.display, exercise=False)
    for form in ("short", "long"):
        assert f"{RLI}{detour['ar']}{PDI}" in forms["ar"][form]
        assert f"{LRI}{detour['en']}{PDI}" in forms["en"][form]
    # Arabic-only values are isolated too: every value, whatever its letters.
    assert f"{RLI}شارع الشيخ زايد{PDI}" in forms["ar"]["short"]
    # The isolates are counted, never dropped: the Arabic SMS text is the form itself.
    [sms_ar] = render_kind("sms", forms, ("ar",))
    assert sms_ar.text == forms["ar"]["short"]


# --- parse_var_args ---------------------------------------------------------------------------------


def test_parse_var_args_forms() -> None:
    parsed = parse_var_args(["road=E11", "detour.ar=شارع الخيل", "detour.en=Al Khail Road", "note=a=b"])
    assert parsed == {
        "road": {"ar": "E11", "en": "E11"},
        "detour": {"ar": "شارع الخيل", "en": "Al Khail Road"},
        "note": {"ar": "a=b", "en": "a=b"},
    }


def test_parse_var_args_later_values_win() -> None:
    assert parse_var_args(["road=E11", "road.en=E311"]) == {"road": {"ar": "E11", "en": "E311"}}


@pytest.mark.parametrize(("arg", "expected"), [("road", "expected NAME=VALUE"), ("=E11", "expected NAME=VALUE"),
                                               ("road.fr=E11", "language must be ar or en")])
def test_parse_var_args_refuses_malformed_arguments(arg: str, expected: str) -> None:
    with pytest.raises(VariableError, match=expected):
        parse_var_args([arg])


def test_parsed_var_args_feed_resolve() -> None:
    parsed = parse_var_args(["road=E311", "reason=accident", "starts=2026-11-23T22:00:00+04:00",
                             "ends=2026-11-24T05:00:00+04:00", "detour.ar=شارع الخيل", "detour.en=Al Khail Road"])
    values = resolve(ROAD, CATALOGUE.gazetteer, parsed, DUBAI, now=NOW)
    assert values.display["road"]["en"] == "Sheikh Mohammed Bin Zayed Road"


# --- properties -------------------------------------------------------------------------------------

PROPS = settings(max_examples=150, deadline=None)
# Written apart from the module's own pattern: a URL scheme, www., or a dot glued between
# a character and two or more letters of any script (a domain, IDN included).
LINK_LIKE = re.compile(r"(?i)[a-z][a-z0-9+.-]*://|\bwww\.|[^\s.]\.[^\W\d_]{2}|\bt\.me\b")
TRICKY = (
    "abcXYZ019 .,:/-_@#!?'\"()&%+~[]{}\\|*=<>$£€"
    "ابتثجحخدذرسشصضطظعغفقكلمنهوي٠١٢٣٤٥٦٧٨٩۰۹،؛؟ـًٌ"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\u200b\u200d\ufeff"
    "\x00\x07\n\r\t\u2028\u00a0\u202fé😀🚧\ufe0fＡ"
)
texts = st.one_of(st.text(max_size=60), st.text(alphabet=TRICKY, max_size=60),
                  st.lists(st.sampled_from(["www", ".", "http", "://", "bit", "ly", "t", "me", "com", "امارات",
                                            "شرطة", " ", "a", "/", "E11"]), max_size=8).map("".join))


def accepted(lang: str, value: str, max_length: int) -> bool:
    try:
        check_text("v", lang, value, max_length)
    except VariableError as exc:
        assert "'v'" in str(exc)
        return False
    return True


@PROPS
@given(lang=st.sampled_from(["ar", "en"]), value=texts, max_length=st.integers(1, 60))
def test_check_text_accepts_only_safe_text(lang: str, value: str, max_length: int) -> None:
    if not accepted(lang, value, max_length):
        return
    assert len(value) <= max_length
    assert not set(value) & BIDI_CONTROLS
    assert all(unicodedata.category(c)[0] not in "CZ" or c == " " for c in value), ascii(value)
    assert not LINK_LIKE.search(value), value
    assert all(ord(c) <= 0xFFFF for c in value)
    if lang == "en":
        assert value.isascii()
        assert sms_encoding(value) == "GSM-7"


@PROPS
@given(value=texts)
def test_accepted_english_text_is_always_gsm7(value: str) -> None:
    if accepted("en", value, 60):
        assert sms_encoding(value) == "GSM-7"
        assert sms_encoding(f"Detour: {value}.") == "GSM-7"


plain_ar = st.text(alphabet="ابتثجحخدذرسشصضطظعغفقكلمنهوي ٣٤E1", min_size=1, max_size=40)
plain_en = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,-", min_size=1,
                   max_size=40)


@PROPS
@given(ar=plain_ar, en=plain_en)
def test_rendering_never_truncates_an_accepted_value(ar: str, en: str) -> None:
    detour = {"ar": ar, "en": en}
    try:
        values = run(ROAD, detour=detour)
    except VariableError:
        return
    forms = render_forms(ROAD, values.display, exercise=False)
    for lang in ("ar", "en"):
        shown = values.display["detour"][lang]
        assert shown == detour[lang].strip()
        for form in ("short", "long"):
            assert shown in forms[lang][form]
        for kind in ("sms", "x", "telegram", "webhook"):
            for rendered in render_kind(kind, forms, (lang,)):
                assert shown in rendered.text


names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
values_st = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
per_language = st.one_of(
    values_st.map(lambda v: {"ar": v, "en": v}),
    st.fixed_dictionaries({"ar": values_st, "en": values_st}),
    st.fixed_dictionaries({"ar": values_st}),
    st.fixed_dictionaries({"en": values_st}),
)


@PROPS
@given(st.dictionaries(names, per_language, max_size=5))
def test_parse_var_args_round_trips(variables: dict[str, dict[str, str]]) -> None:
    args = []
    for name, langs in variables.items():
        if langs.keys() == {"ar", "en"} and langs["ar"] == langs["en"]:
            args.append(f"{name}={langs['ar']}")
        else:
            args += [f"{name}.{lang}={value}" for lang, value in langs.items()]
    assert parse_var_args(args) == variables


offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.one_of(st.datetimes(), st.datetimes(max_value=datetime(1, 1, 2)),
                    st.datetimes(min_value=datetime(9999, 12, 31)))
datetime_texts = st.one_of(
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), moments, offsets),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
)


@PROPS
@given(value=datetime_texts)
def test_a_datetime_variable_renders_or_is_refused_naming_it(value: str) -> None:
    """Whatever is typed: rendered in both languages, or a VariableError naming the variable, never a crash."""
    try:
        values = run(ROAD, starts=value)
    except VariableError as exc:
        assert "'starts'" in str(exc)
        return
    assert 2000 <= datetime.fromisoformat(values.inputs["starts"]["en"]).astimezone(UTC).year <= 2099
    for lang in ("ar", "en"):
        assert values.display["starts"][lang]
    render_forms(ROAD, values.display, exercise=False)
