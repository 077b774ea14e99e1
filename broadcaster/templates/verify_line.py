"""The verification line a public text can end with: "تحقق: {public_url}/v/{short}" / "Verify: …".

A template switches it on with ``verify_line = true``. The broadcaster builds it
(never an officer), so it is the one link the content rules let into a text: the
rules check what an officer types (variables) and the template's own words, and
this line is appended after both are rendered. It goes at the end of the
``short`` and ``long`` forms (:data:`VERIFY_FORMS`): never into a headline (a
card's big line, an email subject) nor into a form another kind reads on its
own (a cell broadcast's). ``templates check`` measures every worst case with it,
using the configured ``public_url``.

The short code is 8 characters of Crockford's base32 (digits and capitals
without I, L, O and U: nothing to mistake when read aloud or typed), derived
from the alert id, so it is the same every time an alert is planned (a
two-person fire confirmed later). It is stored with the alert under a unique
index (migration 0010): two alerts can never answer to one code. Reading one
back forgives what people do: lower case, a hyphen or space in the middle, O for
0, I or L for 1.

Bidi: in the Arabic text the link sits in a left-to-right isolate (LRI … PDI),
so it reads whole, left to right, after "تحقق:"; in the English text the same
isolate is inert, and the SMS kind drops it so that English stays GSM-7.
"""

from __future__ import annotations

import hashlib
from typing import Final
from urllib.parse import urlsplit

from broadcaster.templates.render import LRI, PDI, Forms

ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32
SHORT_LENGTH: Final = 8  # 40 bits
VERIFY_FORMS: Final = ("short", "long")
LABEL: Final = {"ar": "تحقق:", "en": "Verify:"}
SEPARATOR: Final = {"short": "\n", "long": "\n\n"}
SHORT_PATH: Final = "/v/"
MAX_PUBLIC_URL: Final = 64  # characters: every SMS carries it
LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_READ_AS: Final = {"O": "0", "I": "1", "L": "1"}
_URL_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-./:")
NO_PUBLIC_URL: Final = ("verify_line = true needs [broadcaster] public_url in channels.toml: the line links to "
                        "{public_url}/v/CODE, and a text is never sent without the line its template asks for")


def short_code(alert_id: str) -> str:
    """The 8-character code of ``alert_id``: the first 40 bits of its sha256, in Crockford's base32."""
    number = int.from_bytes(hashlib.sha256(alert_id.encode()).digest()[:5], "big")
    return "".join(ALPHABET[(number >> shift) & 31] for shift in range(35, -1, -5))


def read_code(text: str) -> str | None:
    """``text`` as a short code (``ab12-cd3o`` reads as ``AB12CD30``), or None when it cannot be one."""
    cleaned = "".join(_READ_AS.get(c, c) for c in text.upper() if c not in "- ")
    if len(cleaned) != SHORT_LENGTH or any(c not in ALPHABET for c in cleaned):
        return None
    return cleaned


def public_url_problem(public_url: str | None) -> str | None:
    """Why ``public_url`` cannot carry a verification line, or None: it must be set, an ``https`` origin
    (an optional path, no query; plain ``http`` only on this machine), plain ASCII (one GSM-7 septet a
    character) and at most 64 characters."""
    if not public_url:
        return NO_PUBLIC_URL
    base = public_url.rstrip("/")
    parts = urlsplit(base)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK  # a test or a demo on this machine
    if (parts.scheme != "https" and not loopback) or not parts.hostname or parts.query or parts.fragment \
            or parts.username:
        return f"[broadcaster] public_url {public_url!r}: the verification line needs an https address (no query)"
    if any(c not in _URL_CHARS for c in base) or len(base) > MAX_PUBLIC_URL:
        return (f"[broadcaster] public_url {public_url!r}: the verification line needs at most {MAX_PUBLIC_URL} "
                "characters of letters, digits, '-', '.', '/' and ':'")
    return None


def verify_url(public_url: str, code: str) -> str:
    """Where the line points: ``{public_url}/v/{code}``."""
    return f"{public_url.rstrip('/')}{SHORT_PATH}{code}"


def verify_lines(public_url: str, code: str) -> dict[str, str]:
    """The line in each language, the link isolated left to right."""
    url = verify_url(public_url, code)
    return {lang: f"{label} {LRI}{url}{PDI}" for lang, label in LABEL.items()}


def with_verify_line(forms: Forms, public_url: str, code: str) -> dict[str, dict[str, str]]:
    """``forms`` with the line at the end of the short and long form of each language; others unchanged."""
    lines = verify_lines(public_url, code)
    out: dict[str, dict[str, str]] = {}
    for lang, by_form in forms.items():
        out[lang] = {form: (f"{text}{SEPARATOR[form]}{lines[lang]}" if form in VERIFY_FORMS else text)
                     for form, text in by_form.items()}
    return out


def worst_code() -> str:
    """A code as long as any (every code is 8 characters of one GSM-7 septet and one X weight each)."""
    return "W" * SHORT_LENGTH

