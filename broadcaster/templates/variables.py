"""Check the values an officer typed, before anything renders.

Every value is checked for type, length and enum membership; free text obeys the
content rules (:mod:`broadcaster.templates.content`: letters, digits and plain
punctuation of its language only, so no link, no emoji, no control or
bidi-override character, and no phone number or IP address unless the variable
allows them). Datetimes obey their template's time rules
(:mod:`broadcaster.templates.times`) at the moment of firing; numbers render as
locale-formatted decimals, never in scientific notation. A rejected value raises
:class:`VariableError` naming the variable. Nothing renders until every value passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal

from broadcaster.errors import Refusal, VariableError
from broadcaster.templates.catalogue import LANGUAGES, Template, Variable
from broadcaster.templates.content import (
    BIDI_CONTROLS,
    control_problem,
    script_problem,
    text_problem,
    url_problem,
)
from broadcaster.templates.fields import MAX_NUMBER
from broadcaster.templates.gazetteer import Gazetteer
from broadcaster.templates.times import check_times, is_relative, relative_moment

__all__ = ["BIDI_CONTROLS", "Inputs", "Values", "check_text", "example_inputs", "parse_var_args", "resolve"]
from broadcaster.timefmt import MomentError, NoOffset, parse_moment

# Arabic as UAE authorities write it: "الاثنين 30 نوفمبر 2026 الساعة 3:56 مساءً". No comma inside
# the date (it would clash with the sentence's own commas); the period of the day (صباحاً/مساءً,
# not CLDR's bare ص/م) is joined to the time by a no-break space so a line never ends on the
# bare time. Arabic is UCS-2 in an SMS anyway, so the no-break space costs nothing there.
_DATETIME_PATTERNS: Final = {
    "ar": {"datetime": "EEEE d MMMM y 'الساعة' h:mm", "time": "h:mm", "date": "EEEE d MMMM y"},
    "en": {"datetime": "EEEE d MMMM y, h:mm a", "time": "h:mm a", "date": "EEEE d MMMM y"},
}
ARABIC_PERIODS: Final = ("صباحاً", "مساءً")  # before noon, from noon
NBSP: Final = "\u00a0"
LOCALES: Final = {"ar": "ar_AE", "en": "en_AE"}
_DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
_NUMBER: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
MAX_DIGITS: Final = len(str(MAX_NUMBER))  # more whole digits than any bound can hold: refused before Decimal

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


def example_inputs(template: Template, now: float, tz: ZoneInfo) -> dict[str, dict[str, str]]:
    """Every variable filled from the template's own examples (demos and rehearsals).

    A relative datetime example (``+1d 22:00``, ``-10m``) is made absolute from ``now``,
    so the examples always satisfy the template's time rules.
    """
    inputs: dict[str, dict[str, str]] = {}
    for v in template.variables:
        example = v.examples["en"]
        if v.type == "datetime" and is_relative(example):
            moment = relative_moment(example, now, tz).isoformat()
            inputs[v.name] = {lang: moment for lang in LANGUAGES}
        else:
            inputs[v.name] = dict(v.examples)
    return inputs


def resolve(template: Template, gazetteer: Gazetteer, inputs: Inputs, tz: ZoneInfo, *, now: float) -> Values:
    """Check every input against its variable, and the times against ``now`` (the moment of firing).

    Every variable is checked before anything is refused, so one VariableError names them all: every
    missing required variable (reason ``required``, params ``variables``) and every invalid value. A single
    problem is raised as it is, naming its variable.
    """
    declared = {v.name for v in template.variables}
    unknown = sorted(set(inputs) - declared)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise VariableError(
            f"unknown variable{'s' if len(unknown) > 1 else ''} {names} for template {template.id!r} "
            f"(it has: {', '.join(sorted(declared))})",
            variable=unknown[0] if len(unknown) == 1 else None,
        )
    canonical: dict[str, dict[str, str]] = {}
    display: dict[str, dict[str, str]] = {}
    areas: list[str] = []
    moments: dict[str, datetime] = {}
    missing: list[str] = []
    invalid: list[VariableError] = []
    for variable in template.variables:
        given = {lang: value.strip() for lang, value in inputs.get(variable.name, {}).items()}
        if not any(given.values()):
            if variable.required:
                missing.append(variable.name)
            canonical[variable.name] = {lang: "" for lang in LANGUAGES}
            display[variable.name] = {lang: "" for lang in LANGUAGES}
            continue
        try:
            canonical[variable.name], display[variable.name] = _check(variable, given, gazetteer, tz, areas)
            _check_lengths(template, variable, display[variable.name])
        except VariableError as exc:
            exc.variable = exc.variable or variable.name
            invalid.append(exc)
            continue
        if variable.type == "datetime":
            moments[variable.name] = datetime.fromisoformat(canonical[variable.name]["en"])
    if missing or invalid:
        raise _problems(template, missing, invalid)
    check_times({v.name: v.time for v in template.variables if v.time is not None}, moments, now, tz)
    return Values(inputs=canonical, display=display, areas=tuple(dict.fromkeys(areas)))


def _check_lengths(template: Template, variable: Variable, display: Mapping[str, str]) -> None:
    for lang, text in display.items():
        if len(text) > variable.max_length:
            raise VariableError(
                f"variable {variable.name!r} ({lang}) is {len(text)} characters; the approved maximum is "
                f"{variable.max_length}. Shorten it; approved alert text is never cut.",
                where=template.id, variable=variable.name,
            ).because(Refusal.TOO_LONG, max=variable.max_length)


def _problems(template: Template, missing: list[str], invalid: list[VariableError]) -> VariableError:
    """One error for everything wrong with the inputs: the missing variables first, then each invalid value.

    A lone invalid value is returned as it is (its own reason and params); a lone missing variable keeps
    its name as the error's ``variable``; several make an error about ``variables`` as a whole.
    """
    if not missing and len(invalid) == 1:
        return invalid[0]
    parts: list[str] = []
    if missing:
        parts.append(f"missing required variables: {', '.join(missing)}" if len(missing) > 1 else
                     f"variable {missing[0]!r} is required and was not given")
    parts.extend(str(exc).removeprefix(f"{exc.where}: ") if exc.where else str(exc) for exc in invalid)
    names = missing + [exc.variable for exc in invalid if exc.variable]
    error = VariableError("; ".join(parts), where=template.id, variable=names[0] if len(names) == 1 else None)
    if missing:
        return error.because(Refusal.REQUIRED, variables=missing, invalid=[n for n in names if n not in missing])
    return error.because(Refusal.INVALID, variables=names)


def _check(
    variable: Variable, given: Mapping[str, str], gazetteer: Gazetteer, tz: ZoneInfo, areas: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    name = variable.name
    if variable.type == "text":
        missing = [lang for lang in LANGUAGES if not given.get(lang)]
        if missing:
            raise VariableError(f"variable {name!r} needs a value in {missing[0]} too (--var {name}.{missing[0]}=...)"
                                ).because(Refusal.BOTH_LANGUAGES, language=missing[0])
        for lang in LANGUAGES:
            check_text(name, lang, given[lang], variable.max_length, allow=variable.allow)
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
            ).because(Refusal.NOT_A_CHOICE)
        areas.extend(place.areas)
        return canonical, {lang: place.name(lang) for lang in LANGUAGES}
    if variable.type == "enum":
        if value not in variable.choices:
            raise VariableError(f"variable {name!r}: {value!r} is not one of {', '.join(variable.choices)}"
                                ).because(Refusal.NOT_A_CHOICE)
        return canonical, dict(variable.choices[value])
    if variable.type == "number":
        number = parse_number(name, value, variable)
        canonical = {lang: plain(number) for lang in LANGUAGES}
        return canonical, {lang: format_number(number, variable.decimals, lang) for lang in LANGUAGES}
    if variable.type == "datetime":
        moment = parse_datetime(name, value)
        canonical = {lang: moment.isoformat() for lang in LANGUAGES}
        return canonical, {lang: format_moment(moment, variable.format, lang, tz) for lang in LANGUAGES}
    if variable.type == "url":
        check_url(name, value, variable.domains)
        return canonical, canonical
    raise AssertionError(variable.type)


def check_text(name: str, lang: str, value: str, max_length: int, *, allow: Iterable[str] = ()) -> None:
    """Free text: letters, digits and plain punctuation of its language only (the content rules)."""
    where = f"variable {name!r} ({lang})"
    if len(value) > max_length:
        raise VariableError(
            f"{where} is {len(value)} characters; the approved maximum is {max_length}. "
            "Shorten it; approved alert text is never cut.", variable=name
        ).because(Refusal.TOO_LONG, max=max_length)
    problem = text_problem(value, lang, allow=frozenset(allow))
    if problem is not None:
        if script_problem(value, lang) == problem:
            problem += f"; give each language its own value ({name}.ar and {name}.en)"
        raise VariableError(f"{where}: {problem}", variable=name)


def _no_controls(name: str, lang: str, value: str) -> None:
    problem = control_problem(value)
    if problem is not None:
        raise VariableError(f"variable {name!r} ({lang}): {problem}", variable=name)


def parse_number(name: str, value: str, variable: Variable) -> Decimal:
    """A decimal typed with Western or Arabic-Indic digits, within the variable's bounds and decimals."""
    text = value.translate(_DIGITS).replace("٫", ".")
    if not _NUMBER.fullmatch(text):
        raise VariableError(f"variable {name!r}: {value!r} is not a number (write e.g. 5.4)"
                            ).because(Refusal.NOT_A_NUMBER)
    whole, _, fraction = text.lstrip("-").partition(".")
    if len(fraction) > variable.decimals:
        raise VariableError(f"variable {name!r}: at most {variable.decimals} decimal place(s)")
    if len(whole) > MAX_DIGITS:
        raise VariableError(f"variable {name!r}: {value!r} is outside {_bounds(variable)}").because(
            Refusal.OUT_OF_RANGE, **_bound_params(variable))
    number = Decimal(text)
    assert variable.minimum is not None and variable.maximum is not None
    if not Decimal(repr(variable.minimum)) <= number <= Decimal(repr(variable.maximum)):
        raise VariableError(f"variable {name!r}: {value} is outside {_bounds(variable)}").because(
            Refusal.OUT_OF_RANGE, **_bound_params(variable))
    return number if number != 0 else Decimal(0)  # never "-0"


def _bound_params(variable: Variable) -> dict[str, str]:
    low, _, high = _bounds(variable).partition(" to ")
    return {"min": low, "max": high}


def _bounds(variable: Variable) -> str:
    assert variable.minimum is not None and variable.maximum is not None
    low, high = (plain(Decimal(repr(b)).normalize()) for b in (variable.minimum, variable.maximum))
    return f"{low} to {high}"


def plain(number: Decimal) -> str:
    """The canonical text of a number: plain digits, never an exponent."""
    return format(number, "f")


def format_number(number: Decimal | float | int, decimals: int, lang: str) -> str:
    """Exactly ``decimals`` places, Western digits in both languages; grouped in English only.

    English groups thousands ("1,000"). Arabic does not group at all ("1000"): a Latin comma
    inside an Arabic sentence reads as the Arabic list comma's rival, and the Arabic thousands
    separator "٬" is rarely used by UAE authorities with Western digits. The decimal point
    stays "." in both (CLDR's Arabic "٫" is for Arabic-Indic digits).
    """
    pattern = ("#,##0" if lang == "en" else "0") + ("." + "0" * decimals if decimals else "")
    value = number if isinstance(number, Decimal) else Decimal(repr(number))
    if value == 0:
        value = Decimal(0)
    return str(format_decimal(value, pattern, locale=LOCALES[lang], numbering_system="latn"))


def parse_datetime(name: str, value: str) -> datetime:
    try:
        return parse_moment(value)
    except MomentError as exc:
        reason = Refusal.NO_OFFSET if isinstance(exc, NoOffset) else Refusal.BAD_DATETIME
        raise VariableError(f"variable {name!r}: {exc}").because(reason) from None


def format_moment(moment: datetime, fmt: str, lang: str, tz: ZoneInfo) -> str:
    """A moment in ``tz`` as the ``lang`` text reads it, Western digits in both languages.

    Arabic: "الاثنين 30 نوفمبر 2026 الساعة 3:56 مساءً" (no comma; a no-break space before
    صباحاً/مساءً). English: "Monday 30 November 2026, 3:56 PM", with a plain space before
    AM/PM: CLDR's narrow no-break space is not GSM-7 and would silently turn an English SMS
    into UCS-2 (twice the segments).
    """
    text = str(format_datetime(moment, _DATETIME_PATTERNS[lang][fmt], tzinfo=tz, locale=LOCALES[lang]))
    if lang == "ar":
        if fmt == "date":
            return text
        return f"{text}{NBSP}{ARABIC_PERIODS[moment.astimezone(tz).hour >= 12]}"
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def check_url(name: str, value: str, hosts: tuple[str, ...]) -> None:
    """A plain ``https`` link to one of the template's hosts (the content rules)."""
    problem = url_problem(value, hosts)
    if problem is not None:
        raise VariableError(f"variable {name!r}: {problem}", variable=name)
