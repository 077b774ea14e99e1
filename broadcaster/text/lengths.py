"""How long a message is, as each channel measures it: the one place each length rule lives.

* **SMS** (GSM 03.38 / 3GPP TS 23.038): :func:`sms_encoding`, :func:`sms_count`.
* **X**: :func:`x_weighted_length`, twitter-text v3 weighted length after NFC.
* **Telegram**: :func:`telegram_length`, UTF-16 units of the text left once Telegram has
  parsed the HTML (``parse_mode=HTML``).

Every function is pure and never truncates: a caller that finds a message too long must
reject it when the template is approved, not cut it when it is sent.

Where X's rules can only be approximated here (which URLs it links), the approximation
errs towards counting *more* than X would. Over-counting refuses a template that would
have fitted; under-counting lets one through that X then rejects during a crisis.
"""

from __future__ import annotations

import re
import string
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

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


def sms_count(text: str) -> SmsCount:
    """Count the units and parts ``text`` needs, exactly as it will be sent (no normalisation).

    A split message is packed part by part: an escape pair (GSM-7) or a surrogate pair (UCS-2)
    never straddles two parts, so a part may end one unit short and the count can exceed
    ``ceil(units / per_segment)``.
    """
    encoding = sms_encoding(text)
    sizes = [_gsm7_septets(ch) for ch in text] if encoding == "GSM-7" else [_utf16_units(ch) for ch in text]
    units = sum(sizes)
    if units <= SMS_SINGLE[encoding]:
        return SmsCount(encoding, units, 1, SMS_SINGLE[encoding])
    per_segment = SMS_MULTI[encoding]
    return SmsCount(encoding, units, _pack(sizes, per_segment), per_segment)


def _gsm7_septets(ch: str) -> int:
    return 2 if ch in GSM7_EXTENDED else 1


def _utf16_units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _pack(sizes: Iterable[int], capacity: int) -> int:
    """Parts needed to hold ``sizes`` in order, never splitting one item across two parts.

    Greedy filling is optimal here because the order of characters is fixed.
    """
    parts, used = 1, 0
    for size in sizes:
        if used + size > capacity:
            parts, used = parts + 1, 0
        used += size
    return parts


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

# Extended_Pictographic (Unicode emoji-data.txt) without ©, ® and ™, which twemoji (the
# emoji list twitter-text uses) leaves as text. Regional indicators and skin-tone modifiers
# are not pictographs; they are handled on their own below.
_PICTOGRAPHIC: Final = (
    (0x203C, 0x203C), (0x2049, 0x2049), (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA),
    (0x231A, 0x231B), (0x2328, 0x2328), (0x2388, 0x2388), (0x23CF, 0x23CF), (0x23E9, 0x23F3),
    (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB), (0x25B6, 0x25B6), (0x25C0, 0x25C0),
    (0x25FB, 0x25FE), (0x2600, 0x2605), (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705),
    (0x2708, 0x2712), (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721),
    (0x2728, 0x2728), (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C),
    (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757), (0x2763, 0x2767), (0x2795, 0x2797),
    (0x27A1, 0x27A1), (0x27B0, 0x27B0), (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299), (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F), (0x1F12F, 0x1F12F),
    (0x1F16C, 0x1F171), (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A),
    (0x1F1AD, 0x1F1E5), (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F),
    (0x1F232, 0x1F23A), (0x1F23C, 0x1F23F), (0x1F249, 0x1F3FA), (0x1F400, 0x1F53D),
    (0x1F546, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D5, 0x1F7FF),
    (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F),
    (0x1F8AE, 0x1F8FF), (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1FAFF),
    (0x1FC00, 0x1FFFD),
)  # fmt: skip
_PICTOGRAPHIC_STARTS: Final = tuple(start for start, _ in _PICTOGRAPHIC)

_ZWJ: Final = "\u200d"
_VS16: Final = "\ufe0f"
_KEYCAP: Final = "\u20e3"
_KEYCAP_BASES: Final = frozenset("#*0123456789")
_BLACK_FLAG: Final = "\U0001f3f4"
_CANCEL_TAG: Final = "\U000e007f"

# URL detection, a deliberately small cousin of twitter-text's extractUrl:
# * a URL may not follow a letter, digit, @, $, # or a bidi embedding (U+202A..U+202E);
# * with http:// or https:// any Unicode host with a letters-only TLD (or punycode) counts;
# * without a scheme (www.wam.ae, example.com) the host must be ASCII and may not follow
#   - _ . / (so e-mail addresses and paths are not URLs).
# The path stops at characters twitter-text does not allow in one, and trailing punctuation
# that cannot end a URL is given back to the sentence.
_URL_PATH_CHARS: Final = r"A-Za-z0-9!*';:=+,.$/%#\[\]\-_~@|&()?\u00c0-\u00ff\u0400-\u04ff\u2013"
_URL_END_CHARS: Final = frozenset(string.ascii_letters + string.digits + "=_#/+&-")
_URL_RE: Final = re.compile(
    r"(?<![A-Za-z0-9@＠$#＃\u202a-\u202e])"
    r"(?:"
    r"(?P<scheme>(?i:https?://))(?:[^\W_](?:[\w-]*[^\W_])?\.)+(?:(?i:xn--)[A-Za-z0-9-]+|[^\W\d_]{2,63})"
    r"|(?<![._/-])(?:[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r")"
    r"(?![A-Za-z0-9@+-])"
    r"(?::[0-9]{1,5})?"
    rf"(?P<path>[/?#][{_URL_PATH_CHARS}]*)?"
)


def x_weighted_length(text: str) -> int:
    """Weighted length of ``text`` as X counts it (twitter-text v3), to compare with :data:`X_LIMIT`.

    The text is NFC-normalised first. Code points in U+0000..U+10FF (Latin, Arabic, ...),
    U+2000..U+200D, U+2010..U+201F and U+2032..U+2037 weigh 1, every other code point 2.
    A whole emoji sequence (ZWJ sequence, skin tone, flag, keycap, tag sequence, VS16)
    weighs 2 and a URL weighs 23 whatever its length.

    Approximations:

    * Emoji are recognised by their structure (Extended_Pictographic ranges and the sequence
      rules) rather than by twemoji's generated list. A lone pictograph weighs 2 either way,
      and every standard (RGI) sequence is recognised; only an invented ZWJ combination that
      X does not know would weigh less here than on X.
    * A URL with ``http://`` or ``https://`` always weighs 23. A URL without a scheme
      weighs ``max(23, its plain length)``: X links it only when its TLD is on X's list
      (and not a bare two-letter country domain such as ``wam.ae``), which is not checked
      here. Write ``https://`` in templates for the exact count.
    """
    text = unicodedata.normalize("NFC", text)
    urls = {match.start(): _url_span(text, match) for match in _URL_RE.finditer(text)}
    total, i = 0, 0
    while i < len(text):
        if i in urls:
            end, weight = urls[i]
            total, i = total + weight, end
            continue
        end = _emoji_end(text, i)
        if end > i:
            total, i = total + _X_DEFAULT_WEIGHT, end
            continue
        total, i = total + _x_weight(text[i]), i + 1
    return total // _X_SCALE


def _x_weight(ch: str) -> int:
    code = ord(ch)
    if any(start <= code <= end for start, end in _X_LIGHT_RANGES):
        return _X_SCALE
    return _X_DEFAULT_WEIGHT


def _url_span(text: str, match: re.Match[str]) -> tuple[int, int]:
    """End index and scaled weight of the URL that ``match`` found."""
    start, end = match.span()
    # Only the path gives characters back: a host always ends in its TLD.
    path_start = match.start("path") if match.group("path") is not None else end
    while end > path_start and not _can_end_url(text[start:end]):
        end -= 1
    weight = _X_URL_LENGTH * _X_SCALE
    if match.group("scheme") is None:
        weight = max(weight, sum(_x_weight(ch) for ch in text[start:end]))
    return end, weight


def _can_end_url(url: str) -> bool:
    # A ")" may end a URL only when it closes a "(" inside it, as in Wikipedia links.
    if url.endswith(")"):
        return url.count("(") >= url.count(")")
    return url[-1] in _URL_END_CHARS


def _is_pictographic(ch: str) -> bool:
    code = ord(ch)
    index = bisect_right(_PICTOGRAPHIC_STARTS, code) - 1
    return index >= 0 and code <= _PICTOGRAPHIC[index][1]


def _is_regional_indicator(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _is_skin_tone(ch: str) -> bool:
    return 0x1F3FB <= ord(ch) <= 0x1F3FF


def _is_tag(ch: str) -> bool:
    return 0xE0020 <= ord(ch) <= 0xE007E


def _emoji_end(text: str, i: int) -> int:
    """End of the emoji sequence starting at ``i``, or ``i`` if none starts there."""
    n = len(text)
    ch = text[i]
    if ch in _KEYCAP_BASES:
        j = i + 1
        if j < n and text[j] == _VS16:
            j += 1
        return j + 1 if j < n and text[j] == _KEYCAP else i
    if _is_regional_indicator(ch):
        return i + 2 if i + 1 < n and _is_regional_indicator(text[i + 1]) else i + 1
    if not (_is_pictographic(ch) or _is_skin_tone(ch)):
        return i
    j = _emoji_element_end(text, i)
    while j + 1 < n and text[j] == _ZWJ and _is_pictographic(text[j + 1]):
        j = _emoji_element_end(text, j + 1)
    return j


def _emoji_element_end(text: str, i: int) -> int:
    """End of one pictograph plus what modifies it: tag sequence, then VS16 or a skin tone."""
    n = len(text)
    j = i + 1
    if text[i] == _BLACK_FLAG:
        k = j
        while k < n and _is_tag(text[k]):
            k += 1
        # Subdivision flags (England, Scotland, Wales) are black flag + tags + cancel tag.
        if k > j and k < n and text[k] == _CANCEL_TAG:
            j = k + 1
    if j < n and (text[j] == _VS16 or _is_skin_tone(text[j])):
        j += 1
    return j


# ---------------------------------------------------------------------------------------------
# Telegram
# ---------------------------------------------------------------------------------------------

# A start or end tag; quoted attribute values may contain ">".
_TAG_RE: Final = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s(?:[^>\"']|\"[^\"]*\"|'[^']*')*)?/?>")
# Telegram decodes every numeric entity but only these four named ones. Digits are capped
# because no character needs more, and int() refuses very long digit strings.
_ENTITY_RE: Final = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,8})|#[xX]([0-9A-Fa-f]{1,8}));")
_NAMED_ENTITIES: Final = MappingProxyType({"lt": "<", "gt": ">", "amp": "&", "quot": '"'})


def telegram_length(html: str) -> int:
    """UTF-16 length of the text Telegram shows for ``html`` in HTML parse mode.

    Tags (``<b>``, ``<a href="...">``, ``<tg-spoiler>``, ...) count nothing; ``&lt;``,
    ``&gt;``, ``&amp;``, ``&quot;`` and numeric entities count as the one character they
    stand for. Compare with :data:`TELEGRAM_LIMIT`.
    """
    return utf16_length(_ENTITY_RE.sub(_decode_entity, _TAG_RE.sub("", html)))


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
