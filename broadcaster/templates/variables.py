"""Check the values an officer typed, before anything renders.

Every value is checked for type, length and enum membership; free text may hold
only letters, digits and plain punctuation of its language, so it can carry no
link, no emoji and no control or bidi-override character. A rejected value
raises :class:`VariableError` naming the variable. Nothing renders until every
value passes.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal

from broadcaster.errors import VariableError
from broadcaster.templates.catalogue import LANGUAGES, Template, Variable
from broadcaster.templates.gazetteer import Gazetteer
from broadcaster.timefmt import MomentError, parse_moment

BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# Plain punctuation shared by both languages; every one is in the GSM-7 basic set.
_PUNCT: Final = frozenset(" .,;:!?'\"()-/&%+")
_ARABIC_PUNCT: Final = frozenset("،؛؟ـ")
# The last branch catches domains in any script ("شرطة.امارات": Arabic IDN TLDs exist
# and phones link them): a dot glued between a character and two or more letters.
_LINK: Final = re.compile(
    r"(?i)(?:[a-z][a-z0-9+.-]*://|\bwww\.|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b|\bt\.me\b"
    r"|[^\s.]+\.[^\W\d_]{2,})"
)
_DATETIME_PATTERNS: Final = {
    "ar": {"datetime": "EEEE d MMMM y، h:mm a", "time": "h:mm a", "date": "EEEE d MMMM y"},
    "en": {"datetime": "EEEE d MMMM y, h:mm a", "time": "h:mm a", "date": "EEEE d MMMM y"},
}
LOCALES: Final = {"ar": "ar_AE", "en": "en_AE"}
_DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")

Inputs = Mapping[str, Mapping[str, str]]  # variable -> language -> typed value


@dataclass(frozen=True)
class Values:
    """Checked values: the canonical inputs and their display text per language."""

    inputs: Mapping[str, Mapping[str, str]]
    display: Mapping[str, Mapping[str, str]]
    areas: tuple[str, ...]


def parse_var_args(args: Iterable[str]) -> dict[str, dict[str, str]]:
    """``NAME=VALUE`` (both languages) or ``NAME.ar=VALUE`` / ``NAME.en=VALUE``."""
    parsed: dict[str, dict[str, str]] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise VariableError(f"--var {arg!r}: expected NAME=VALUE or NAME.ar=VALUE")
        name, _, lang = key.strip().partition(".")
        if lang and lang not in LANGUAGES:
            raise VariableError(f"--var {key}: language must be ar or en")
        slot = parsed.setdefault(name, {})
        for language in [lang] if lang else LANGUAGES:
            slot[language] = value
    return parsed


def example_inputs(template: Template) -> dict[str, dict[str, str]]:
    """Every variable filled from the template's own examples (demos and rehearsals)."""
    return {v.name: dict(v.examples) for v in template.variables}


def resolve(template: Template, gazetteer: Gazetteer, inputs: Inputs, tz: ZoneInfo) -> Values:
    """Check every input against its variable; raise VariableError on the first bad one."""
    declared = {v.name for v in template.variables}
    unknown = sorted(set(inputs) - declared)
    if unknown:
        raise VariableError(
            f"unknown variable {unknown[0]!r} for template {template.id!r} (it has: {', '.join(sorted(declared))})"
        )
    canonical: dict[str, dict[str, str]] = {}
    display: dict[str, dict[str, str]] = {}
    areas: list[str] = []
    for variable in template.variables:
        given = {lang: value.strip() for lang, value in inputs.get(variable.name, {}).items()}
        if not any(given.values()):
            if variable.required:
                raise VariableError(f"variable {variable.name!r} is required and was not given", where=template.id)
            canonical[variable.name] = {lang: "" for lang in LANGUAGES}
            display[variable.name] = {lang: "" for lang in LANGUAGES}
            continue
        canonical[variable.name], display[variable.name] = _check(variable, given, gazetteer, tz, areas)
        for lang, text in display[variable.name].items():
            if len(text) > variable.max_length:
                raise VariableError(
                    f"variable {variable.name!r} ({lang}) is {len(text)} characters; the approved maximum is "
                    f"{variable.max_length}. Shorten it; approved alert text is never cut.",
                    where=template.id,
                )
    return Values(inputs=canonical, display=display, areas=tuple(dict.fromkeys(areas)))


def _check(
    variable: Variable, given: Mapping[str, str], gazetteer: Gazetteer, tz: ZoneInfo, areas: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    name = variable.name
    if variable.type == "text":
        missing = [lang for lang in LANGUAGES if not given.get(lang)]
        if missing:
            raise VariableError(f"variable {name!r} needs a value in {missing[0]} too (--var {name}.{missing[0]}=...)")
        for lang in LANGUAGES:
            check_text(name, lang, given[lang], variable.max_length)
        return dict(given), dict(given)

    values = {given.get(lang, "") for lang in LANGUAGES} - {""}
    if len(values) != 1:
        raise VariableError(f"variable {name!r} is a {variable.type}: give one value for both languages")
    value = values.pop()
    _no_controls(name, "input", value)
    if len(value) > 200:
        raise VariableError(f"variable {name!r}: value is {len(value)} characters long")
    canonical = {lang: value for lang in LANGUAGES}

    if variable.type == "place":
        place = gazetteer.get(value)
        if place is None or (variable.places and place.type != variable.places):
            kind = variable.places or "place"
            options = ", ".join(sorted(p.code for p in gazetteer.of_type(variable.places)))
            article = "an" if kind[0] in "aeiou" else "a"
            raise VariableError(
                f"variable {name!r}: {value!r} is not {article} {kind} in the gazetteer (known: {options})"
            )
        areas.extend(place.areas)
        return canonical, {lang: place.name(lang) for lang in LANGUAGES}
    if variable.type == "enum":
        if value not in variable.choices:
            raise VariableError(f"variable {name!r}: {value!r} is not one of {', '.join(variable.choices)}")
        return canonical, dict(variable.choices[value])
    if variable.type == "number":
        number = parse_number(name, value, variable)
        canonical = {lang: repr(number) for lang in LANGUAGES}
        return canonical, {lang: format_number(number, variable.decimals, lang) for lang in LANGUAGES}
    if variable.type == "datetime":
        moment = parse_datetime(name, value)
        canonical = {lang: moment.isoformat() for lang in LANGUAGES}
        return canonical, {lang: format_moment(moment, variable.format, lang, tz) for lang in LANGUAGES}
    if variable.type == "url":
        check_url(name, value, variable.domains)
        return canonical, canonical
    raise AssertionError(variable.type)


def check_text(name: str, lang: str, value: str, max_length: int) -> None:
    """Free text: letters, digits and plain punctuation of its language only."""
    where = f"variable {name!r} ({lang})"
    if len(value) > max_length:
        raise VariableError(
            f"{where} is {len(value)} characters; the approved maximum is {max_length}. "
            "Shorten it; approved alert text is never cut."
        )
    _no_controls(name, lang, value)
    link = _LINK.search(value)
    if link:
        raise VariableError(f"{where}: {link.group(0)!r} looks like a link; links are not allowed in text variables")
    for char in value:
        if char in _PUNCT or (char.isascii() and char.isalnum()):
            continue
        if lang == "ar" and (_is_arabic_letter_or_digit(char) or char in _ARABIC_PUNCT):
            continue
        category = unicodedata.category(char)
        what = "an emoji or symbol" if category.startswith("S") or ord(char) > 0xFFFF else "the character"
        script = "Arabic or Latin" if lang == "ar" else "plain English (GSM-7)"
        raise VariableError(
            f"{where}: {what} {char!r} (U+{ord(char):04X}) is not allowed; use {script} letters, digits "
            f"and basic punctuation"
        )


def _is_arabic_letter_or_digit(char: str) -> bool:
    return 0x0620 <= ord(char) <= 0x06FF and unicodedata.category(char)[0] in "LMN"


def _no_controls(name: str, lang: str, value: str) -> None:
    for char in value:
        if char in BIDI_CONTROLS:
            raise VariableError(
                f"variable {name!r} ({lang}): bidi control character U+{ord(char):04X} "
                f"({unicodedata.name(char, '?')}) is not allowed; it can disguise what the text says"
            )
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"):
            raise VariableError(
                f"variable {name!r} ({lang}): control or invisible character U+{ord(char):04X} is not allowed"
            )


def parse_number(name: str, value: str, variable: Variable) -> float:
    text = value.translate(_DIGITS).replace("٫", ".")
    if not re.fullmatch(r"-?\d+(\.\d+)?", text):
        raise VariableError(f"variable {name!r}: {value!r} is not a number")
    decimals = len(text.partition(".")[2])
    if decimals > variable.decimals:
        raise VariableError(f"variable {name!r}: at most {variable.decimals} decimal place(s)")
    number = float(text)
    assert variable.minimum is not None and variable.maximum is not None
    if not variable.minimum <= number <= variable.maximum:
        raise VariableError(f"variable {name!r}: {value} is outside {variable.minimum:g} to {variable.maximum:g}")
    return number


def format_number(number: float, decimals: int, lang: str) -> str:
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return str(format_decimal(number, pattern, locale=LOCALES[lang]))


def parse_datetime(name: str, value: str) -> datetime:
    try:
        return parse_moment(value)
    except MomentError as exc:
        raise VariableError(f"variable {name!r}: {exc}") from None


def format_moment(moment: datetime, fmt: str, lang: str, tz: ZoneInfo) -> str:
    text = format_datetime(moment, _DATETIME_PATTERNS[lang][fmt], tzinfo=tz, locale=LOCALES[lang])
    # CLDR puts a narrow no-break space before AM/PM; it is not GSM-7 and would
    # silently turn an English SMS into UCS-2 (twice the segments).
    return str(text).replace("\u202f", " ").replace("\u00a0", " ")


def check_url(name: str, value: str, domains: tuple[str, ...]) -> None:
    parts = urlsplit(value)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or not value.isascii() or parts.username or parts.password:
        raise VariableError(f"variable {name!r}: links must be plain https URLs")
    if host.startswith("xn--") or ".xn--" in host or not any(host == d or host.endswith("." + d) for d in domains):
        raise VariableError(f"variable {name!r}: {host!r} is not an approved domain ({', '.join(domains)})")
