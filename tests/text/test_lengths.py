"""Length rules: hand-checked known values first, then properties that must hold for any text."""

from __future__ import annotations

import html
import math
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.text.lengths import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    SMS_MULTI,
    SMS_SINGLE,
    TELEGRAM_LIMIT,
    X_LIMIT,
    SmsCount,
    sms_count,
    sms_encoding,
    telegram_length,
    utf16_length,
    x_weighted_length,
)

ALEF = "\u0627"  # ا
AIN = "\u0639"  # ع
CJK = "\u4e2d"  # 中
GRINNING = "\U0001f600"  # 😀, outside the BMP
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # 👨‍👩‍👧‍👦, 7 code points
ARABIC_LETTERS = [chr(c) for c in range(0x0621, 0x064B)]

# Hypothesis' per-example deadline is a timing assertion; the suite must not depend on speed.
props = settings(deadline=None)


# --- SMS: known values ------------------------------------------------------------------------


def test_gsm7_tables_match_gsm_03_38() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes minus the escape code
    assert len(GSM7_EXTENDED) == 10
    assert not GSM7_BASIC & GSM7_EXTENDED
    assert {"@", "£", "\n", "\r", "Ç", "\u0394", "\u03a9", "¤", "§", "¿", "à"} <= GSM7_BASIC
    assert set("^{}\\[~]|€\f") == GSM7_EXTENDED


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("", "GSM-7"),
        ("Road closed {E11} €5 fine", "GSM-7"),
        ("Stay indoors" + ALEF, "UCS-2"),
        ("ç", "UCS-2"),  # only the capital Ç is in the GSM alphabet
        ("`", "UCS-2"),
        ("\u200f", "UCS-2"),  # right-to-left mark
        ("\u2066E11\u2069", "UCS-2"),  # left-to-right isolate
        ("\u200e", "UCS-2"),
        (GRINNING, "UCS-2"),
    ],
)
def test_encoding(text: str, encoding: str) -> None:
    assert sms_encoding(text) == encoding


@pytest.mark.parametrize(
    ("n", "segments"),
    [(70, 1), (71, 2), (134, 2), (135, 3)],
)
def test_arabic_parts(n: int, segments: int) -> None:
    count = sms_count(AIN * n)
    assert (count.encoding, count.units, count.segments) == ("UCS-2", n, segments)
    assert count.per_segment == (70 if segments == 1 else 67)


@pytest.mark.parametrize(
    ("n", "segments"),
    [(160, 1), (161, 2), (306, 2), (307, 3)],
)
def test_latin_parts(n: int, segments: int) -> None:
    count = sms_count("a" * n)
    assert (count.encoding, count.units, count.segments) == ("GSM-7", n, segments)
    assert count.per_segment == (160 if segments == 1 else 153)


def test_one_arabic_letter_turns_latin_into_ucs2() -> None:
    assert sms_count("a" * 100).segments == 1
    assert sms_count("a" * 100 + ALEF) == SmsCount("UCS-2", 101, 2, 67)


def test_escape_characters_count_two() -> None:
    assert sms_count("{" * 80) == SmsCount("GSM-7", 160, 1, 160)
    assert sms_count("{" * 81) == SmsCount("GSM-7", 162, 2, 153)
    assert sms_count("€").units == 2


def test_escape_pair_is_never_split_across_parts() -> None:
    # 152 + [2] would be 154 > 153, so "{" opens part 2, which then holds 151 more "a";
    # the last "a" needs a third part although 306 septets would fit in 2 × 153.
    text = "a" * 152 + "{" + "a" * 152
    count = sms_count(text)
    assert count.units == 306
    assert math.ceil(count.units / 153) == 2
    assert count.segments == 3


def test_surrogate_pair_is_never_split_across_parts() -> None:
    text = AIN * 66 + GRINNING + AIN * 66
    count = sms_count(text)
    assert (count.encoding, count.units) == ("UCS-2", 134)
    assert math.ceil(count.units / 67) == 2
    assert count.segments == 3


def test_astral_character_counts_two_units() -> None:
    assert sms_count(GRINNING) == SmsCount("UCS-2", 2, 1, 70)
    assert sms_count(AIN * 68 + GRINNING).segments == 1
    assert sms_count(AIN * 69 + GRINNING).segments == 2


def test_empty_text_is_one_segment() -> None:
    assert sms_count("") == SmsCount("GSM-7", 0, 1, 160)


def test_limits_table() -> None:
    assert dict(SMS_SINGLE) == {"GSM-7": 160, "UCS-2": 70}
    assert dict(SMS_MULTI) == {"GSM-7": 153, "UCS-2": 67}
    assert (X_LIMIT, TELEGRAM_LIMIT) == (280, 4096)


# --- X: known values --------------------------------------------------------------------------


def test_x_arabic_counts_one_per_letter() -> None:
    assert x_weighted_length(AIN * 280) == 280 <= X_LIMIT
    assert x_weighted_length(AIN * 281) == 281 > X_LIMIT


def test_x_cjk_counts_two() -> None:
    assert x_weighted_length(CJK * 140) == 280


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("", 0),
        ("a", 1),
        ("e\u0301", 1),  # NFC makes it é
        (GRINNING, 2),
        (FAMILY, 2),
        ("\U0001f44d\U0001f3fd", 2),  # thumbs up, medium skin tone
        ("\U0001f1e6\U0001f1ea", 2),  # flag of the UAE
        ("1\ufe0f\u20e3", 2),  # keycap 1
        ("\u2764\ufe0f", 2),  # red heart with VS16
        ("\U0001f3f3\ufe0f\u200d\U0001f308", 2),  # rainbow flag
        ("\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f", 2),  # England
        (GRINNING + GRINNING, 4),
        ("\U0001f44d\u200d", 3),  # a ZWJ that joins nothing weighs on its own
        ("\u00a9", 1),  # ©: text, as twemoji treats it
        ("\U0001d400", 2),  # 𝐀: astral but not an emoji
        ("\u200d", 1),  # ZWJ alone sits in U+2000..U+200D
        ("\u200f", 2),  # bidi marks and isolates do not: each one costs 2 on X
        ("\u2066", 2),
        ("\u2014", 1),  # em dash, U+2010..U+201F
        ("\u2122", 2),
    ],
)
def test_x_weights(text: str, weight: int) -> None:
    assert x_weighted_length(text) == weight


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com",
        "http://t.co/abc",
        "HTTPS://EXAMPLE.COM/A",
        "https://www.moi.gov.ae/ar/media/news/" + "x" * 300 + "?id=12&lang=ar#top",
        "https://en.wikipedia.org/wiki/Sandstorm_(weather)",
        "https://\u0645\u0648\u0642\u0639.\u0627\u0645\u0627\u0631\u0627\u062a",  # Arabic domain and TLD
    ],
)
def test_x_url_counts_23_whatever_its_length(url: str) -> None:
    assert x_weighted_length(url) == 23
    assert x_weighted_length(f"Info: {url} now") == 6 + 23 + 4


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("(https://wam.ae/x).", 1 + 23 + 2),  # closing bracket and full stop are not the URL's
        ("https://wam.ae/path?", 23 + 1),
        ("\u2066https://wam.ae\u2069", 2 + 23 + 2),
        ("\u062e\u0628\u0631 https://wam.ae", 4 + 23),
        ("https://localhost/x", 19),  # no TLD, not a URL to X
        ("info@wam.ae", 11),  # an e-mail address is not a URL
        ("a/b.com", 7),
        ("3.5 km", 6),
    ],
)
def test_x_url_boundaries(text: str, weight: int) -> None:
    assert x_weighted_length(text) == weight


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("example.com", 23),
        ("bit.ly", 23),
        ("wam.ae", 23),
        ("www.moi.gov.ae", 23),
        ("see example.com.", 4 + 23 + 1),
        # Without a scheme X may leave it unlinked, so the longer of the two counts is taken.
        ("wam.ae/ar/news/1234567890123", 28),
    ],
)
def test_x_bare_domains_never_undercount(text: str, weight: int) -> None:
    assert x_weighted_length(text) == weight


# --- Telegram: known values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "length"),
    [
        ("<b>a&amp;b</b>", 3),
        (GRINNING, 2),
        ("&#x1F600;", 2),
        ("&#65;&#x42;", 2),
        ("&lt;&gt;&quot;", 3),
        ('<a href="https://wam.ae/?a=1&amp;b=2">link</a>', 4),
        ('<a href="x>y">hi</a>', 2),
        ("<tg-spoiler>s</tg-spoiler><blockquote expandable>q</blockquote>", 2),
        ('<pre><code class="language-python">x &lt; 1</code></pre>', 5),
        ("&amp;lt;", 4),  # decoded once: the text is "&lt;"
        ("&apos;", 6),  # not one of Telegram's named entities
        ("&#0;", 4),
        ("&#" + "1" * 5000 + ";", 5003),  # no such character; stays as written
        ("1 < 2", 5),  # a lone "<" is not a tag
    ],
)
def test_telegram_length(markup: str, length: int) -> None:
    assert telegram_length(markup) == length


def test_telegram_limit_counts_text_not_markup() -> None:
    body = "<b>" + "a" * TELEGRAM_LIMIT + "</b>"
    assert len(body) > TELEGRAM_LIMIT
    assert telegram_length(body) == TELEGRAM_LIMIT


def test_utf16_length() -> None:
    assert utf16_length("") == 0
    assert utf16_length(AIN + "a") == 2
    assert utf16_length(GRINNING) == 2
    assert utf16_length(FAMILY) == 11


# --- properties -------------------------------------------------------------------------------

GSM_ALPHABET = sorted(GSM7_BASIC | GSM7_EXTENDED)
gsm_text = st.text(alphabet=st.sampled_from(GSM_ALPHABET), max_size=400)
# Mostly GSM characters with some Arabic, astral and other characters mixed in, long enough
# to cross the part boundaries.
any_char = st.one_of(
    st.sampled_from(GSM_ALPHABET),
    st.sampled_from(ARABIC_LETTERS),
    st.sampled_from([GRINNING, "\U0001d400", "\u2066", "\u2069", "\u200f"]),
    st.characters(),
)
sms_text = st.text(alphabet=any_char, max_size=400)
non_gsm_char = st.characters().filter(lambda ch: ch not in GSM7_BASIC and ch not in GSM7_EXTENDED)


@props
@given(gsm_text)
def test_gsm_text_is_gsm7(text: str) -> None:
    count = sms_count(text)
    assert count.encoding == "GSM-7"
    assert count.units == len(text) + sum(ch in GSM7_EXTENDED for ch in text)


@props
@given(sms_text, non_gsm_char, sms_text)
def test_one_non_gsm_char_forces_ucs2(before: str, ch: str, after: str) -> None:
    text = before + ch + after
    count = sms_count(text)
    assert count.encoding == "UCS-2"
    assert count.units == utf16_length(text)


@props
@given(sms_text)
def test_one_segment_iff_fits_single_limit(text: str) -> None:
    count = sms_count(text)
    assert (count.segments == 1) == (count.units <= SMS_SINGLE[count.encoding])
    expected_per_segment = SMS_SINGLE if count.segments == 1 else SMS_MULTI
    assert count.per_segment == expected_per_segment[count.encoding]


@props
@given(sms_text)
def test_split_parts_waste_at_most_one_unit_each(text: str) -> None:
    count = sms_count(text)
    if count.segments > 1:
        # Packing can lose at most one unit per part (a pair pushed to the next part).
        assert math.ceil(count.units / count.per_segment) <= count.segments
        assert count.segments <= math.ceil(count.units / (count.per_segment - 1))


@props
@given(sms_text, any_char)
def test_appending_never_reduces_segments(text: str, ch: str) -> None:
    assert sms_count(text + ch).segments >= sms_count(text).segments


@props
@given(st.text())
def test_utf16_length_matches_encoder(text: str) -> None:
    assert utf16_length(text) == len(text.encode("utf-16-le")) // 2


x_fragment = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            GRINNING,
            FAMILY,
            "\U0001f44d\U0001f3fd",
            "\U0001f1e6\U0001f1ea",
            "1\ufe0f\u20e3",
            "https://wam.ae/x",
            "www.example.com",
            "example.com",
            "e\u0301",
            "\u200d",
            "\ufe0f",
            " ",
            ".",
            CJK,
        ]
    ),
    st.text(alphabet=st.sampled_from(ARABIC_LETTERS), max_size=20),
)
x_text = st.lists(x_fragment, max_size=12).map("".join)


@props
@given(x_text)
def test_x_ignores_normalisation_form(text: str) -> None:
    weight = x_weighted_length(text)
    assert weight == x_weighted_length(unicodedata.normalize("NFD", text))
    assert weight == x_weighted_length(unicodedata.normalize("NFC", text))


@props
@given(x_text, x_text)
def test_x_weight_adds_up_across_a_space(left: str, right: str) -> None:
    # Neither a URL nor an emoji sequence can run through a space.
    assert x_weighted_length(left + " " + right) == x_weighted_length(left) + 1 + x_weighted_length(right)


@props
@given(st.text(alphabet=st.sampled_from([*ARABIC_LETTERS, *"abcXYZ0189 ,:;!?-()"]), max_size=400))
def test_x_arabic_and_latin_count_one_each(text: str) -> None:
    assert x_weighted_length(text) == len(text)


@props
@given(st.text(alphabet=st.characters(exclude_characters="."), max_size=200))
def test_x_without_urls_weighs_at_most_two_per_code_point(text: str) -> None:
    # No "." means no URL; every code point then weighs 1 or 2, and sequences weigh less.
    assert x_weighted_length(text) <= 2 * len(unicodedata.normalize("NFC", text))


@props
@given(
    st.from_regex(r"[a-z0-9]{1,20}(\.[a-z0-9]{1,10}){0,2}\.(com|ae|org|gov)", fullmatch=True),
    st.from_regex(r"(/[A-Za-z0-9_=&%.-]{0,40}[A-Za-z0-9])*/?", fullmatch=True),
)
def test_x_any_https_url_weighs_23(host: str, path: str) -> None:
    assert x_weighted_length(f"https://{host}{path}") == 23


@props
@given(st.text())
def test_telegram_escaped_text_counts_as_plain_text(text: str) -> None:
    assert telegram_length(html.escape(text)) == utf16_length(text)


@props
@given(
    st.text(),
    st.sampled_from(
        [
            ("<b>", "</b>"),
            ("<i>", "</i>"),
            ("<u>", "</u>"),
            ("<s>", "</s>"),
            ("<code>", "</code>"),
            ("<pre>", "</pre>"),
            ("<tg-spoiler>", "</tg-spoiler>"),
            ("<blockquote>", "</blockquote>"),
            ('<a href="https://wam.ae/?q=1&amp;r=2">', "</a>"),
        ]
    ),
)
def test_telegram_tags_add_nothing(text: str, tag: tuple[str, str]) -> None:
    start, end = tag
    assert telegram_length(start + html.escape(text) + end) == utf16_length(text)
