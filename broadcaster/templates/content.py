"""The content rules: what words may render, wherever they come from.

One set of rules for every word an officer types (text variables), every name
the gazetteer gives (place variables) and every ``url`` variable:

- no bidi-control, control or invisible character (they can disguise what a
  text says, and XML cannot even carry some of them);
- no link or link-like text (``t.me/x``, ``evil.com``, ``شرطة.امارات``);
- no phone number and no IP address, which phones turn into tappable links,
  unless the variable allows them (``allow = ["phone"]`` / ``["ip"]``);
- only letters, digits and plain punctuation of the language (so no emoji);
- Arabic text holds at least one Arabic letter: English typed into the Arabic
  slot (``--var detour="Al Khail Road"``) would reach Arabic readers in English.
  A proper noun with digits or Latin letters ("E311") may sit inside it;
- a ``url`` is parsed, and only ``https`` to one of the template's hosts, with
  nothing but plain URL characters (no whitespace, backslash or userinfo), passes.

Each function returns what is wrong in words (None when nothing is); callers
raise their own error naming the variable or the gazetteer entry.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Collection
from typing import Final
from urllib.parse import urlsplit

from phonenumbers import Leniency, PhoneNumberMatcher

BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
INVISIBLE: Final = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
ALLOWANCES: Final = ("phone", "ip")  # what a text variable may allow with allow = [...]
# Plain punctuation shared by both languages; every one is in the GSM-7 basic set.
_PUNCT: Final = frozenset(" .,;:!?'\"()-/&%+")
_ARABIC_PUNCT: Final = frozenset("،؛؟ـ")
# The last branch catches domains in any script ("شرطة.امارات": Arabic IDN TLDs exist
# and phones link them): a dot glued between a character and two or more letters.
_LINK: Final = re.compile(
    r"(?i)(?:[a-z][a-z0-9+.-]*://|\bwww\.|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b|\bt\.me\b"
    r"|[^\s.]+\.[^\W\d_]{2,})"
)
_DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_DIGIT_RUN: Final = re.compile(r"\d{7,}")  # too long for the phone matcher, still dialled by a tap
_IPV4: Final = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\d)")
_IPV6: Final = re.compile(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?")
PHONE_REGION: Final = "AE"  # how a number without a country code is read
# RFC 3986 characters a URL may hold as typed: unreserved, sub-delims, ":", "/", "?", "#" and "%".
_URL_CHARS: Final = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:/?#%]+")
_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def control_problem(value: str) -> str | None:
    """A bidi-control, control or invisible character in ``value``."""
    for char in value:
        if char in BIDI_CONTROLS:
            return (f"bidi control character U+{ord(char):04X} ({unicodedata.name(char, '?')}) is not allowed; "
                    "it can disguise what the text says")
        if unicodedata.category(char) in INVISIBLE:
            return f"control or invisible character U+{ord(char):04X} is not allowed"
    return None


def link_problem(value: str) -> str | None:
    link = _LINK.search(value)
    if link:
        return f"{link.group(0)!r} looks like a link; links are not allowed here"
    return None


def phone_problem(value: str) -> str | None:
    """A phone number (any country, Arabic-Indic digits too), or a digit run a phone would dial."""
    text = _IPV4.sub(" ", value.translate(_DIGITS))  # an IPv4 address is the IP rule's to judge
    for match in PhoneNumberMatcher(text, PHONE_REGION, leniency=Leniency.POSSIBLE):
        return f"{match.raw_string!r} looks like a phone number, which phones make a tappable link"
    run = _DIGIT_RUN.search(text)
    if run:
        return f"{run.group(0)!r} looks like a phone number, which phones make a tappable link"
    return None


def ip_problem(value: str) -> str | None:
    """An IPv4 or IPv6 address, which phones and clients may link."""
    text = value.translate(_DIGITS)
    v4 = _IPV4.search(text)
    if v4:
        return f"{v4.group(0)!r} looks like an IP address, which phones make a tappable link"
    for match in _IPV6.finditer(text):
        candidate = match.group(0)
        if not any(c.isalnum() for c in candidate):
            continue
        try:
            ipaddress.ip_address(candidate.split("%")[0])
        except ValueError:
            continue
        return f"{candidate!r} looks like an IP address, which phones make a tappable link"
    return None


def char_problem(value: str, lang: str) -> str | None:
    """A character outside the language's letters, digits and plain punctuation (an emoji, a symbol)."""
    for char in value:
        if char in _PUNCT or (char.isascii() and char.isalnum()):
            continue
        if lang == "ar" and (_is_arabic_letter_or_digit(char) or char in _ARABIC_PUNCT):
            continue
        category = unicodedata.category(char)
        what = "an emoji or symbol" if category.startswith("S") or ord(char) > 0xFFFF else "the character"
        script = "Arabic or Latin" if lang == "ar" else "plain English (GSM-7)"
        return (f"{what} {char!r} (U+{ord(char):04X}) is not allowed; use {script} letters, digits "
                "and basic punctuation")
    return None


def script_problem(value: str, lang: str) -> str | None:
    """Arabic text without a single Arabic letter (English, or only digits, typed into the Arabic slot)."""
    if lang == "ar" and value and not any(_is_arabic_letter(char) for char in value):
        return (f"{value!r} holds no Arabic letter; the Arabic text must be written in Arabic "
                "(a road number such as E311 may sit inside it)")
    return None


def text_problem(value: str, lang: str, *, allow: Collection[str] = ()) -> str | None:
    """The first content rule ``value`` (text in ``lang``) breaks, in words; None when it breaks none."""
    checks = [control_problem, link_problem]
    if "ip" not in allow:
        checks.append(ip_problem)
    if "phone" not in allow:
        checks.append(phone_problem)
    for check in checks:
        problem = check(value)
        if problem is not None:
            return problem
    return char_problem(value, lang) or script_problem(value, lang)


def url_problem(value: str, hosts: Collection[str]) -> str | None:
    """What keeps ``value`` from being a plain ``https`` link to one of ``hosts``; None when nothing does."""
    if any(c.isspace() for c in value):
        return "a link may not hold spaces or other whitespace"
    if "\\" in value:
        return "a link may not hold a backslash (browsers read it as '/', so it can hide the real host)"
    problem = control_problem(value)
    if problem:
        return problem
    if not value.isascii():
        return "a link must be plain ASCII (no look-alike letters, no internationalised host)"
    if "@" in value:
        return "a link may not hold '@' (user info before the host hides the real host)"
    if not _URL_CHARS.fullmatch(value) or _PERCENT.search(value):
        return "a link may hold only plain URL characters (letters, digits, - . _ ~ / ? # = & and %XX)"
    if not value.startswith("https://"):
        return "links must be plain https:// URLs"
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if port is not None or parts.netloc.lower() != host:
        return "a link names its host alone: no port, user or password"
    labels = host.split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels) or host.startswith("xn--") \
            or ".xn--" in host:
        return f"{host!r} is not a plain host name"
    allowed = sorted({h.lower() for h in hosts})
    if host not in allowed:
        return f"{host!r} is not an approved host ({', '.join(allowed)})"
    return None


def _is_arabic_letter(char: str) -> bool:
    return 0x0620 <= ord(char) <= 0x06FF and unicodedata.category(char).startswith("L")


def _is_arabic_letter_or_digit(char: str) -> bool:
    return 0x0620 <= ord(char) <= 0x06FF and unicodedata.category(char)[0] in "LMN"
