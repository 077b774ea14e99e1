"""How long a message is, as each channel measures it: the one place each length rule lives.

* **SMS** (GSM 03.38 / 3GPP TS 23.038): :func:`sms_encoding`, :func:`sms_parts`, :func:`sms_count`.
* **Cell broadcast** (3GPP TS 23.041 §9.4.1.2, TS 23.038): :func:`cbs_pages`, pages of 93 GSM-7 septets or
  82 octets of UCS-2, at most :data:`CBS_MAX_PAGES` per message.
* **X**: :func:`x_weighted_length`, twitter-text 3.x weighted length after NFC, with URLs
  (:mod:`broadcaster.text.x_urls`) and emoji (:mod:`broadcaster.text.x_emoji`) as X finds them.
* **Telegram**: :func:`telegram_length`, Unicode code points of the text left once Telegram
  has parsed the HTML (``parse_mode=HTML``); TDLib measures its limits with ``utf8_length``.

Every function is pure and never truncates: a caller that finds a message too long must
reject it when the template is approved, not cut it when it is sent. Where a rule can only
be approximated, the approximation counts *more* than the channel would: over-counting
refuses a template that would have fitted; under-counting lets one through that the
channel then rejects, or splits into more paid parts, during a crisis.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import regex

from broadcaster.text import x_emoji, x_urls

SmsEncoding = Literal["GSM-7", "UCS-2"]

X_LIMIT: Final = 280
TELEGRAM_LIMIT: Final = 4096

#: Units that fit in a message sent as one part.
SMS_SINGLE: Final[Mapping[SmsEncoding, int]] = MappingProxyType({"GSM-7": 160, "UCS-2": 70})
#: Units per part once a message is split: each part gives up room to a concatenation header.
SMS_MULTI: Final[Mapping[SmsEncoding, int]] = MappingProxyType({"GSM-7": 153, "UCS-2": 67})

# ---------------------------------------------------------------------------------------------
# SMS
# ---------------------------------------------------------------------------------------------

#: The GSM 03.38 default alphabet: each character is one septet. The escape code 0x1B is left
#: out because it is not a character; it only introduces :data:`GSM7_EXTENDED`.
GSM7_BASIC: Final[frozenset[str]] = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅå"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039eÆæßÉ"  # Δ_ΦΓΛΩΠΨΣΘΞ: Greek capitals
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

#: The GSM 03.38 extension table: each character is sent as escape + code, so two septets.
GSM7_EXTENDED: Final[frozenset[str]] = frozenset("\f^{}\\[~]|€")

_GSM7: Final = GSM7_BASIC | GSM7_EXTENDED


@dataclass(frozen=True, slots=True)
class SmsCount:
    """What one SMS text costs.

    ``units`` are septets for GSM-7 and UTF-16 code units for UCS-2. ``per_segment`` is the
    single-part limit when the text fits in one part, otherwise the per-part limit of a split
    message. Empty text is one segment: providers (Twilio among them) bill an empty body as
    one message.
    """

    encoding: SmsEncoding
    units: int
    segments: int
    per_segment: int


def sms_encoding(text: str) -> SmsEncoding:
    """Return the encoding a provider must use for ``text``.

    One character outside the GSM-7 alphabet (basic or extended) forces UCS-2 for the whole
    message: any Arabic letter, but also invisible ones such as the bidi marks U+200E/U+200F
    and isolates U+2066..U+2069 that bilingual templates rely on.
    """
    return "GSM-7" if _GSM7.issuperset(text) else "UCS-2"


@functools.lru_cache(maxsize=4096)  # one alert measures the same few texts for every channel
def sms_count(text: str) -> SmsCount:
    """Count the units and parts ``text`` needs, exactly as it will be sent (no normalisation).

    A split message is packed part by part as :func:`sms_parts` cuts it, so the count can
    exceed ``ceil(units / per_segment)`` when a part has to end early.
    """
    encoding = sms_encoding(text)
    units = _sms_units(text, encoding)
    if units <= SMS_SINGLE[encoding]:
        return SmsCount(encoding, units, 1, SMS_SINGLE[encoding])
    per_segment = SMS_MULTI[encoding]
    return SmsCount(encoding, units, len(_part_starts(text, encoding, per_segment)), per_segment)


def sms_parts(text: str) -> list[str]:
    """The parts ``text`` is sent in, as Twilio's segmenter cuts it.

    A part never ends inside a grapheme cluster (a letter with its harakat such as ``بً``, an
    emoji sequence, CR LF): the whole cluster moves to the next part, as Twilio keeps it
    whole. Only a cluster too long for any part is cut, between code points, and then never
    through an escape pair (GSM-7) or a surrogate pair (UCS-2). Text that fits in one
    message is one part; joining the parts gives ``text`` back.
    """
    encoding = sms_encoding(text)
    if _sms_units(text, encoding) <= SMS_SINGLE[encoding]:
        return [text]
    starts = _part_starts(text, encoding, SMS_MULTI[encoding])
    return [text[start:end] for start, end in zip(starts, [*starts[1:], len(text)], strict=True)]


_GRAPHEME_RE: Final = regex.compile(r"\X", regex.DOTALL)


def _part_starts(text: str, encoding: SmsEncoding, capacity: int) -> list[int]:
    """Where each part of a split message starts: greedy packing of whole grapheme clusters (greedy
    is optimal, the order being fixed); a cluster longer than a part is packed code point by code point."""
    starts, used, position = [0], 0, 0
    extended = GSM7_EXTENDED if encoding == "GSM-7" else frozenset()
    for cluster in _GRAPHEME_RE.findall(text):
        pieces: tuple[tuple[int, int], ...]
        if len(cluster) == 1:  # most clusters: one character, 1 unit (2 if escaped or astral)
            size = 2 if cluster in extended or cluster > "\uffff" else 1
            pieces = ((1, size),)
        else:
            size = _sms_units(cluster, encoding)
            whole = size <= capacity
            pieces = ((len(cluster), size),) if whole else tuple((1, _sms_units(ch, encoding)) for ch in cluster)
        for length, units in pieces:
            if used + units > capacity:
                starts.append(position)
                used = 0
            used += units
            position += length
    return starts


def _sms_units(text: str, encoding: SmsEncoding) -> int:
    if encoding == "GSM-7":
        return len(text) + sum(1 for ch in text if ch in GSM7_EXTENDED)
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


#: Units one cell broadcast page holds: 82 octets of user data, i.e. 93 packed GSM-7 septets or 41 UCS-2 units.
CBS_PAGE: Final[Mapping[SmsEncoding, int]] = MappingProxyType({"GSM-7": 93, "UCS-2": 41})
#: The most pages one CBS message may have (TS 23.041 §9.4.1.2.4); a network may allow fewer.
CBS_MAX_PAGES: Final = 15


@dataclass(frozen=True, slots=True)
class CbsCount:
    """What one cell broadcast text takes: its encoding, units (septets or UTF-16 units) and pages."""

    encoding: SmsEncoding
    units: int
    pages: int
    per_page: int


@functools.lru_cache(maxsize=1024)
def cbs_pages(text: str) -> CbsCount:
    """The pages a CBS message of ``text`` takes, exactly as it is sent (no normalisation, never cut).

    The encoding is chosen as for SMS (:func:`sms_encoding`: one character outside GSM-7 makes it UCS-2).
    Each page is filled on its own: an escape pair (GSM-7) or a surrogate pair (UCS-2) never straddles two
    pages, so a page may end one unit early; this counts such a page as the phone shows it. An empty text
    is one page. The count may exceed :data:`CBS_MAX_PAGES`: the caller refuses such a text.
    """
    encoding = sms_encoding(text)
    per_page = CBS_PAGE[encoding]
    units = _sms_units(text, encoding)
    pages, used = 1, 0
    extended = GSM7_EXTENDED if encoding == "GSM-7" else frozenset()
    for ch in text:
        size = 2 if ch in extended or ch > "\uffff" else 1
        if used + size > per_page:
            pages, used = pages + 1, 0
        used += size
    return CbsCount(encoding, units, pages, per_page)


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units: characters outside the BMP count 2."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# ---------------------------------------------------------------------------------------------
# X (twitter-text v3)
# ---------------------------------------------------------------------------------------------

# The v3 configuration, as published in twitter-text's config/v3.json.
_X_SCALE: Final = 100
_X_DEFAULT_WEIGHT: Final = 200
_X_URL_LENGTH: Final = 23
_X_LIGHT_RANGES: Final = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_X_INVALID: Final = frozenset("\ufffe\ufeff\uffff")


@functools.lru_cache(maxsize=4096)  # one alert measures the same few texts for every channel
def x_weighted_length(text: str) -> int:
    """Weighted length of ``text`` as X counts it (twitter-text 3.x), to compare with :data:`X_LIMIT`.

    The text is NFC-normalised first. Then, from left to right:

    * a URL that X links (:func:`~broadcaster.text.x_urls.url_spans`) weighs 23 whatever its
      length; text that only looks like a URL (``http://twitter_underscore.com``) is counted
      character by character;
    * an emoji X's parser knows (:mod:`broadcaster.text.x_emoji`: ZWJ sequence, skin tone,
      flag, keycap, tag sequence) weighs 2 in total; a sequence newer than its Emoji 11 list
      weighs what its known pieces weigh;
    * every other code point weighs 1 in U+0000..U+10FF (Latin, Arabic, ...), U+2000..U+200D,
      U+2010..U+201F and U+2032..U+2037, and 2 anywhere else (CJK, bidi isolates, ...).
    """
    text = unicodedata.normalize("NFC", text)
    urls = dict(x_urls.url_spans(text))
    total, i = 0, 0
    while i < len(text):
        if i in urls:
            total, i = total + _X_URL_LENGTH * _X_SCALE, urls[i]
            continue
        end = x_emoji.emoji_end(text, i)
        if end > i:
            total, i = total + _X_DEFAULT_WEIGHT, end
            continue
        total, i = total + _x_weight(text[i]), i + 1
    return total // _X_SCALE


def x_is_valid(text: str) -> bool:
    """Whether X accepts ``text`` as a post: not empty, within :data:`X_LIMIT`, and free of the
    characters twitter-text refuses (U+FFFE, U+FEFF, U+FFFF)."""
    return 0 < x_weighted_length(text) <= X_LIMIT and not _X_INVALID.intersection(text)


def _x_weight(ch: str) -> int:
    code = ord(ch)
    if any(start <= code <= end for start, end in _X_LIGHT_RANGES):
        return _X_SCALE
    return _X_DEFAULT_WEIGHT


# ---------------------------------------------------------------------------------------------
# Telegram
# ---------------------------------------------------------------------------------------------

# A start or end tag; quoted attribute values may contain ">".
_TAG_RE: Final = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s(?:[^>\"']|\"[^\"]*\"|'[^']*')*)?/?>")
# Telegram decodes every numeric entity but only these four named ones. Digits are capped
# because no character needs more, and int() refuses very long digit strings.
_ENTITY_RE: Final = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,8})|#[xX]([0-9A-Fa-f]{1,8}));")
_NAMED_ENTITIES: Final = MappingProxyType({"lt": "<", "gt": ">", "amp": "&", "quot": '"'})


@functools.lru_cache(maxsize=4096)  # one alert measures the same few texts for every channel
def telegram_length(html: str) -> int:
    """Length of the text Telegram shows for ``html`` in HTML parse mode, in Unicode code points.

    Telegram (TDLib) checks its limits (4096 for a message, 1024 for a caption) with
    ``utf8_length``, which counts code points: an emoji outside the BMP is 1, not the 2
    UTF-16 units it takes. Tags (``<b>``, ``<a href="...">``, ``<tg-spoiler>``, ...) count
    nothing; ``&lt;``, ``&gt;``, ``&amp;``, ``&quot;`` and numeric entities count as the one
    character they stand for. Compare with :data:`TELEGRAM_LIMIT`.
    """
    return len(telegram_text(html))


def telegram_text(html: str) -> str:
    """The text Telegram shows for ``html`` in HTML parse mode: tags removed, entities decoded."""
    return _ENTITY_RE.sub(_decode_entity, _TAG_RE.sub("", html))


def _decode_entity(match: re.Match[str]) -> str:
    named, decimal, hexadecimal = match.groups()
    if named is not None:
        return _NAMED_ENTITIES[named]
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    # An entity for no valid character stays as written (Telegram would refuse the message
    # anyway), so it is counted at its written length rather than crashing the check.
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return match.group(0)
    return chr(code)
