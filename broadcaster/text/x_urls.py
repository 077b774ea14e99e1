"""Which spans of a post X turns into links, by twitter-text 3.x's URL extraction rules.

X counts each URL it links as 23 (``transformedURLLength``) whatever its length, and every
other character by its weight; so a span that looks like a URL but that X leaves as text
(``http://twitter_underscore.com``) must be counted character by character. The rules,
written from twitter-text's documented behaviour and checked against its conformance cases
(``conformance/extract.yml`` and ``validate.yml``; see tests/text/):

* A URL may not follow a letter, digit, ``@``, ``$`` or ``#`` (full-width too); it may follow
  a bidi mark or isolate.
* The host is labels of "domain characters" (anything but ASCII punctuation, spaces, bidi
  controls and U+FFFE/U+FEFF/U+FFFF) joined by dots. Labels before the last two may contain
  ``_``; the registered name may not. Labels cannot start or end with ``-`` or ``_``.
* The host ends in a top-level domain X knows (:data:`~broadcaster.text.x_tlds.TLDS`, not
  followed by a letter, digit, ``@``, ``+`` or ``-``) or in a punycode label ``xn--...``.
* Each label must stay within 63 characters once punycode-encoded, and the URL within 4096.
* Without ``http://``/``https://``, only the ASCII part of the host is linked, and not when
  the host follows ``-``, ``_``, ``.`` or ``/``.
* Path and query characters are limited; the path must end in a letter, digit or one of
  ``+-=_#/`` (or a balanced parenthesis), the query in a letter, digit or ``-_&=#/``, so
  trailing punctuation stays with the sentence.
* ``t.co`` links take no extra path, and a slug over 40 characters is not a link.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from broadcaster.text.x_tlds import TLDS

_PUNCT: Final = r"!'#%&()*+,\\\-./:;<=>?@\[\]^_{|}~$"
_SPACES: Final = "\t-\r \x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_INVALID: Final = "\ufffe\ufeff\uffff"
_DIRECTIONAL: Final = "\u202a-\u202e\u061c\u200e\u200f\u2066-\u2069"
_LATIN_ACCENTS: Final = (
    "\xc0-\xd6\xd8-\xf6\xf8-\xff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b\u0263\u0268"
    "\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)
_CYRILLIC: Final = "\u0400-\u04ff"

_DOMAIN_CHAR: Final = f"[^{_PUNCT}{_SPACES}{_INVALID}{_DIRECTIONAL}]"
# Longest first, so that a shorter TLD never wins by alternation order alone.
_TLD_ALTERNATION: Final = "|".join(re.escape(tld) for tld in sorted(TLDS, key=lambda t: (-len(t), t)))
_TLD: Final = f"(?:(?:{_TLD_ALTERNATION})(?=[^0-9a-zA-Z@+-]|$)|xn--[-0-9a-z]+)"
_SUBDOMAIN: Final = f"(?:(?:{_DOMAIN_CHAR}(?:[_-]|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\\.)"
_DOMAIN_NAME: Final = f"(?:(?:{_DOMAIN_CHAR}(?:-|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\\.)"
_DOMAIN: Final = f"{_SUBDOMAIN}*{_DOMAIN_NAME}{_TLD}"

_PATH_CHAR: Final = f"[a-z{_CYRILLIC}0-9!*';:=+,.$/%#\\[\\]\\-\u2013_~@|&{_LATIN_ACCENTS}]"
_BALANCED: Final = f"\\((?:{_PATH_CHAR}+|{_PATH_CHAR}*\\({_PATH_CHAR}+\\){_PATH_CHAR}*)\\)"
_PATH_END: Final = f"(?:[+\\-a-z{_CYRILLIC}0-9=_#/{_LATIN_ACCENTS}]|{_BALANCED})"
_PATH_SEGMENT: Final = f"(?:{_PATH_CHAR}*(?:{_BALANCED}{_PATH_CHAR}*)*{_PATH_END}|@{_PATH_CHAR}+/)"
_QUERY_CHAR: Final = r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]"
_QUERY_END: Final = r"[a-z0-9\-_&=#/]"
_QUERY: Final = f"\\?{_QUERY_CHAR}*{_QUERY_END}"


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The URL, ASCII-domain and t.co patterns, compiled on first use: the TLD list makes them slow to compile
    (tens of ms), and a CLI that measures no X post never needs them."""
    url = re.compile(
        f"(?P<before>[^A-Za-z0-9@＠$#＃{_INVALID}]|[{_DIRECTIONAL}]|^)"
        f"(?P<url>(?P<scheme>https?://)?(?P<domain>{_DOMAIN})(?::[0-9]+)?(?P<path>/{_PATH_SEGMENT}*)?(?:{_QUERY})?)",
        re.IGNORECASE,
    )
    ascii_domain = re.compile(f"(?:[-a-z0-9{_LATIN_ACCENTS}]+\\.)+{_TLD}", re.IGNORECASE)
    tco = re.compile(f"https?://t\\.co/([a-z0-9]+)(?:{_QUERY})?", re.IGNORECASE)
    return url, ascii_domain, tco


_NO_SCHEME_AFTER: Final = frozenset("-_./")

_MAX_URL_LENGTH: Final = 4096
_MAX_LABEL_LENGTH: Final = 63
_MAX_TCO_SLUG: Final = 40
_DEFAULT_SCHEME: Final = "https://"


def url_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every URL X links in ``text``, in order, never overlapping.

    ``text`` should already be NFC-normalised, as X normalises a post before counting it.
    """
    if "." not in text:
        return []
    spans: list[tuple[int, int]] = []
    url_re, _, tco_re = _patterns()
    for match in url_re.finditer(text):
        url, scheme, domain = match.group("url"), match.group("scheme"), match.group("domain")
        start, end = match.span("url")
        if not _valid_host(url, scheme or _DEFAULT_SCHEME, domain):
            continue
        if scheme is None:
            spans.extend(_ascii_spans(match, start, end))
            continue
        tco = tco_re.match(url)
        if tco is not None:
            if len(tco.group(1)) > _MAX_TCO_SLUG:
                continue
            end = start + tco.end()
        spans.append((start, end))
    return spans


def _ascii_spans(match: re.Match[str], start: int, end: int) -> list[tuple[int, int]]:
    """A URL written without a scheme: X links only the ASCII domains in its host."""
    before = match.group("before")
    if before and before[-1] in _NO_SCHEME_AFTER:
        return []
    domain = match.group("domain")
    spans = [(start + found.start(), start + found.end()) for found in _patterns()[1].finditer(domain)]
    if spans and match.group("path"):
        spans[-1] = (spans[-1][0], end)
    return spans


def _valid_host(url: str, scheme: str, domain: str) -> bool:
    if domain[:4].lower() == "xn--" and _patterns()[1].search(domain) is None:
        return False  # a punycode host cannot also carry non-ASCII characters
    for label in domain.split("."):
        encoded = label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
        if not 1 <= len(encoded) <= _MAX_LABEL_LENGTH:
            return False
    return _utf16(scheme) + _utf16(url) <= _MAX_URL_LENGTH


def _utf16(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
