"""Length rules: hand-checked known values first, then properties that must hold for any text."""

from __future__ import annotations

import html
import itertools
import math
import unicodedata

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.text.lengths import (
    CBS_MAX_PAGES,
    CBS_PAGE,
    GSM7_BASIC,
    GSM7_EXTENDED,
    SMS_MULTI,
    SMS_SINGLE,
    TELEGRAM_LIMIT,
    X_LIMIT,
    SmsCount,
    cbs_pages,
    sms_count,
    sms_encoding,
    sms_parts,
    telegram_length,
    telegram_text,
    utf16_length,
    x_is_valid,
    x_weighted_length,
)
from broadcaster.text.x_urls import url_spans
from tests.text.twitter_text_conformance import EXTRACTED_URLS, WEIGHTED_LENGTH

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


def test_sms_keeps_a_letter_with_its_haraka_in_one_part() -> None:
    # Twilio's reference: ب×66 + بً + ب×66 is 134 UTF-16 units but 3 parts, because the part
    # that would end after the first 67 units would cut بً (beh + fathatan) in two.
    beh, tanween = "\u0628", "\u064b"
    text = beh * 66 + beh + tanween + beh * 66
    count = sms_count(text)
    assert (count.encoding, count.units, count.segments) == ("UCS-2", 134, 3)
    assert sms_parts(text) == [beh * 66, beh + tanween + beh * 65, beh]


def test_sms_keeps_an_emoji_sequence_in_one_part() -> None:
    text = AIN * 60 + FAMILY + AIN * 10  # the family (11 units) would straddle units 61..71
    assert sms_parts(text) == [AIN * 60, FAMILY + AIN * 10]


def test_sms_cuts_a_cluster_longer_than_a_part_between_code_points() -> None:
    text = ALEF + "\u0651" * 100  # one letter with 100 shaddas: one grapheme cluster, 101 units
    parts = sms_parts(text)
    assert "".join(parts) == text
    assert [utf16_length(part) for part in parts] == [67, 34]


def test_sms_parts_of_a_short_text() -> None:
    assert sms_parts("") == [""]
    assert sms_parts(AIN * 70) == [AIN * 70]


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
        # twitter-text 3.x links a bare domain with a known TLD, and its path with it.
        ("wam.ae/ar/news/1234567890123", 23),
        ("example.notatld/x", 17),  # no TLD X knows: plain text
        ("http://example.comm/x", 21),

    ],
)
def test_x_bare_domains_are_links(text: str, weight: int) -> None:
    assert x_weighted_length(text) == weight


def test_x_counts_text_x_would_not_link_character_by_character() -> None:
    # twitter-text does not link http://twitter_underscore.com (the registered name may not
    # hold "_"), nor the "underscore.com" after the "_": X counts all 34 characters.
    assert x_weighted_length("test http://twitter_underscore.com") == 34
    assert x_weighted_length("test http://sub_domain.twitter.com") == 5 + 23  # "_" is fine in a subdomain
    assert x_weighted_length("http://" + "a" * 64 + ".com") == 7 + 64 + 4  # a label over 63 characters


def test_x_a_tld_newer_than_twitter_text_3_1_is_counted_as_text() -> None:
    # .music was delegated after twitter-text 3.1's TLD list: X may leave the URL unlinked, so it
    # counts character by character (more, never less); a .com URL of the same shape is a link.
    assert x_weighted_length("https://example.music/abcdef") == 28
    assert x_weighted_length("https://example.com/abcdef") == 23


@pytest.mark.parametrize(
    ("description", "text", "weight", "valid"), WEIGHTED_LENGTH, ids=[case[0] for case in WEIGHTED_LENGTH]
)
def test_x_twitter_text_conformance_weighted_length(description: str, text: str, weight: int, valid: bool) -> None:
    assert x_weighted_length(text) == weight
    assert x_is_valid(text) is valid


@pytest.mark.parametrize(
    ("description", "text", "urls"), EXTRACTED_URLS, ids=[case[0] for case in EXTRACTED_URLS]
)
def test_x_twitter_text_conformance_urls(description: str, text: str, urls: tuple[str, ...]) -> None:
    assert tuple(text[start:end] for start, end in url_spans(text)) == urls


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        # twitter-text 3.1 finds emoji with twemoji-parser 11 (Emoji 11.0): a newer sequence is
        # the known pieces it is made of, each 2, with each ZWJ 1.
        ("\U0001f426\u200d\U0001f525", 5),  # phoenix (Emoji 15.1) = bird + ZWJ + fire
        ("\u2764\ufe0f\u200d\U0001f525", 5),  # heart on fire (13.1)
        ("\U0001f642\u200d\u2194\ufe0f", 5),  # head shaking horizontally (15.1)
        ("\U0001f9d1\u200d\U0001f9b0", 5),  # person: red hair (12.1)
        ("\U0001f9d1\u200d\U0001f91d\u200d\U0001f9d1", 8),  # people holding hands (12.0)
        ("\U0001faf1\U0001f3fb\u200d\U0001faf2\U0001f3ff", 9),  # handshake with two skin tones (14.0)
        ("\U0001fae0", 2),  # melting face (14.0): a new single emoji is astral, 2 either way
        # Emoji 11.0 and earlier: one emoji, 2.
        ("\U0001f469\u200d\U0001f9b0", 2),  # woman: red hair (11.0)
        ("\U0001f3f3\ufe0f\u200d\U0001f308", 2),  # rainbow flag (4.0)
        ("\u00a9\ufe0f", 2),  # © with VS16 is an emoji; © alone is text (1)
        ("\u2122\ufe0f", 2),
        ("1\u20e3", 2),  # keycap without VS16
    ],
)
def test_x_emoji_as_twitter_text_3_1_counts_them(text: str, weight: int) -> None:
    assert x_weighted_length(text) == weight


# --- Telegram: known values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "length"),
    [
        ("<b>a&amp;b</b>", 3),
        (GRINNING, 1),  # one code point, although two UTF-16 units
        ("&#x1F600;", 1),
        (FAMILY, 7),
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


def test_telegram_counts_code_points_not_utf16_units() -> None:
    # TDLib checks 4096 with utf8_length (code points): 4096 emoji fit, although they take
    # 8192 UTF-16 units; 4097 do not.
    assert telegram_length(GRINNING * TELEGRAM_LIMIT) == TELEGRAM_LIMIT
    assert utf16_length(GRINNING * TELEGRAM_LIMIT) == 2 * TELEGRAM_LIMIT
    assert telegram_length("<b>" + GRINNING * (TELEGRAM_LIMIT + 1) + "</b>") == TELEGRAM_LIMIT + 1


def test_telegram_text_is_what_telegram_shows() -> None:
    assert telegram_text('<b>تحذير</b>\n<a href="https://wam.ae">A &amp; B &lt;1&gt;</a>') == "تحذير\nA & B <1>"


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
# Text mixing the things a part must not cut: letters with harakat, emoji sequences, CR LF.
cluster_text = st.lists(
    st.one_of(
        any_char,
        st.sampled_from(["\u0628\u064b", "\u0627\u0651\u064e", FAMILY, "\U0001f44d\U0001f3fd", "\r\n", "e\u0301"]),
    ),
    max_size=250,
).map("".join)
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
@given(cluster_text)
def test_split_parts_waste_less_than_a_cluster_each(text: str) -> None:
    count = sms_count(text)
    if count.segments > 1:
        # A part loses at most one cluster's room less one unit (the cluster pushed to the
        # next part); a cluster too long for any part is cut, so it wastes at most one unit.
        sizes = [_units(cluster, count.encoding) for cluster in regex.findall(r"\X", text, flags=regex.DOTALL)]
        waste = max([1, *(size - 1 for size in sizes if size <= count.per_segment)])
        assert math.ceil(count.units / count.per_segment) <= count.segments
        assert count.segments <= math.ceil(count.units / (count.per_segment - waste))


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
    # Neither a URL nor an emoji sequence can run through a space. Each side is weighed beside its space:
    # whether a scheme-less domain is a link depends on what precedes it, and the start of the text
    # is not a space (found: "¬ÄÞǴ00.FI" links a domain at the start, not after a space).
    together = x_weighted_length(left + " " + right)
    assert together == x_weighted_length(left + " ") + x_weighted_length(" " + right) - 1


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
    assert telegram_length(html.escape(text)) == len(text)


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
    assert telegram_length(start + html.escape(text) + end) == len(text)


@props
@given(cluster_text)
def test_sms_parts_never_cut_a_grapheme_cluster(text: str) -> None:
    parts = sms_parts(text)
    assert "".join(parts) == text
    assert len(parts) == sms_count(text).segments
    clusters = regex.findall(r"\X", text, flags=regex.DOTALL)
    boundaries = set(itertools.accumulate(len(cluster) for cluster in clusters))
    cuts = set(itertools.accumulate(len(part) for part in parts[:-1]))
    count = sms_count(text)
    long_clusters = any(utf16_length(cluster) > count.per_segment for cluster in clusters)
    assert long_clusters or cuts <= boundaries
    if len(parts) > 1:
        assert all(utf16_length(part) <= count.per_segment for part in parts if count.encoding == "UCS-2")


@props
@given(cluster_text)
def test_sms_count_never_undercounts_a_naive_split(text: str) -> None:
    count = sms_count(text)
    assert count.segments >= math.ceil(count.units / count.per_segment)
    # Nor does keeping clusters whole ever need fewer parts than cutting between code points.
    naive = 1 if count.segments == 1 else _pack_code_points(text, count.encoding, count.per_segment)
    assert count.segments >= naive


def _units(text: str, encoding: str) -> int:
    return len(text) + sum(ch in GSM7_EXTENDED for ch in text) if encoding == "GSM-7" else utf16_length(text)


def _pack_code_points(text: str, encoding: str, capacity: int) -> int:
    parts, used = 1, 0
    for ch in text:
        size = _units(ch, encoding)
        if used + size > capacity:
            parts, used = parts + 1, 0
        used += size
    return parts


# ---------------------------------------------------------------------------------------------
# Cell broadcast pages (3GPP TS 23.041: 82 octets a page, 93 GSM-7 septets or 41 UCS-2 units, at most 15)
# ---------------------------------------------------------------------------------------------


def test_cbs_page_sizes_are_the_3gpp_ones() -> None:
    assert (CBS_PAGE["GSM-7"], CBS_PAGE["UCS-2"], CBS_MAX_PAGES) == (93, 41, 15)


@pytest.mark.parametrize(("text", "encoding", "pages"), [
    ("", "GSM-7", 1),
    ("a" * 93, "GSM-7", 1),
    ("a" * 94, "GSM-7", 2),
    ("a" * 93 * 15, "GSM-7", 15),
    ("a" * (93 * 15 + 1), "GSM-7", 16),
    (ALEF * 41, "UCS-2", 1),
    (ALEF * 42, "UCS-2", 2),
    (ALEF * 41 * 15, "UCS-2", 15),
    (ALEF * (41 * 15 + 1), "UCS-2", 16),
    ("a" * 92 + "€", "GSM-7", 2),  # an escape pair never straddles two pages
    ("a" * 91 + "€", "GSM-7", 1),
    (ALEF * 40 + GRINNING, "UCS-2", 2),  # nor does a surrogate pair
    ("Flood warning" + "\u2066", "UCS-2", 1),  # one isolate makes the whole message UCS-2
])
def test_cbs_pages_at_the_limits(text: str, encoding: str, pages: int) -> None:
    count = cbs_pages(text)
    assert (count.encoding, count.pages) == (encoding, pages)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENDED), max_size=1600),
                 st.text(alphabet=[*ARABIC_LETTERS, " ", "a", GRINNING], max_size=700)))
def test_cbs_pages_hold_every_unit_and_waste_at_most_one_a_page(text: str) -> None:
    count = cbs_pages(text)
    per_page = CBS_PAGE[count.encoding]
    assert count.encoding == sms_count(text).encoding
    assert count.units == (sms_count(text).units if text else 0)
    # Enough room for every unit, never a page more than the units need (a page may end one unit early).
    assert count.pages >= max(1, math.ceil(count.units / per_page))
    assert count.pages <= max(1, math.ceil(count.units / (per_page - 1)))
    if not any(ch in GSM7_EXTENDED or ch > "\uffff" for ch in text):
        assert count.pages == max(1, math.ceil(count.units / per_page))
