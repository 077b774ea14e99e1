"""The ``[[variables]]`` of a template: one declared blank, its type and the rules its values obey."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeGuard
from zoneinfo import ZoneInfo

from broadcaster.errors import TemplateError
from broadcaster.templates.content import ALLOWANCES
from broadcaster.templates.times import MAX_WITHIN_HOURS, WHEN, TimeRule, is_relative, relative_moment

LANGUAGES: Final = ("ar", "en")
VARIABLE_TYPES: Final = ("text", "place", "datetime", "number", "enum", "url")
NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_HOST: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))+$")
_UTC: Final = ZoneInfo("UTC")
MAX_LABEL: Final = 60  # a form label, not a sentence
MAX_NUMBER: Final = 10**12  # a number variable's bounds: its display never needs an exponent


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    type: str
    max_length: int
    required: bool
    examples: Mapping[str, str]  # language -> example input
    places: str | None = None  # place: restrict to a gazetteer type
    choices: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # enum key -> language -> label
    format: str = "datetime"  # datetime: datetime | time | date
    minimum: float | None = None
    maximum: float | None = None
    decimals: int = 0
    domains: tuple[str, ...] = ()  # url: the allowed hosts, exactly
    time: TimeRule | None = None  # datetime: when it may lie, relative to the moment of firing
    allow: tuple[str, ...] = ()  # text: "phone" and/or "ip" let such text through
    label: Mapping[str, str] = field(default_factory=dict)  # language -> what a form calls it; {} when not declared


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_variable(table: Any, index: int, where: str) -> Variable:
    if not isinstance(table, dict):
        raise TemplateError(f"[[variables]] #{index}: not a table", where=where)
    name = table.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise TemplateError(f"[[variables]] #{index}: key 'name' must be lower_snake_case", where=where)
    ctx = f"variable {name!r}"
    vtype = table.get("type")
    if vtype not in VARIABLE_TYPES:
        raise TemplateError(f"{ctx}: type {vtype!r} is not one of {', '.join(VARIABLE_TYPES)}", where=where)
    max_length = table.get("max_length")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 1 <= max_length <= 500:
        raise TemplateError(f"{ctx}: max_length must be a whole number from 1 to 500", where=where)
    required = table.get("required", True)
    if not isinstance(required, bool):
        raise TemplateError(f"{ctx}: required must be true or false", where=where)
    if vtype == "text":
        examples = table.get("examples")
        if not isinstance(examples, dict) or any(not isinstance(examples.get(lang), str) for lang in LANGUAGES):
            raise TemplateError(f"{ctx}: a text variable needs examples = {{ar = ..., en = ...}}", where=where)
        example_map = {lang: examples[lang] for lang in LANGUAGES}
    else:
        example = table.get("example")
        if not isinstance(example, str | int | float) or isinstance(example, bool):
            raise TemplateError(f"{ctx}: needs an example value", where=where)
        example_map = {lang: str(example) for lang in LANGUAGES}
    time = _time_rule(table, vtype, ctx, where, example_map["en"])
    label = _label(table.get("label"), ctx, where)
    allow = table.get("allow", [])
    if not isinstance(allow, list) or any(a not in ALLOWANCES for a in allow) or (allow and vtype != "text"):
        raise TemplateError(f"{ctx}: allow = [...] is for text variables and holds only {', '.join(ALLOWANCES)}",
                            where=where)

    choices: dict[str, dict[str, str]] = {}
    if vtype == "enum":
        raw_choices = table.get("choices")
        if not isinstance(raw_choices, dict) or not raw_choices:
            raise TemplateError(f"{ctx}: an enum needs [variables.choices]", where=where)
        for key, labels in raw_choices.items():
            if not isinstance(labels, dict) or any(not isinstance(labels.get(lang), str) for lang in LANGUAGES):
                raise TemplateError(f"{ctx}: choice {key!r} needs {{ar = ..., en = ...}}", where=where)
            choices[key] = {lang: labels[lang] for lang in LANGUAGES}
    fmt = table.get("format", "datetime")
    if vtype == "datetime" and fmt not in ("datetime", "time", "date"):
        raise TemplateError(f"{ctx}: format must be datetime, time or date", where=where)
    decimals = table.get("decimals", 0)
    if not isinstance(decimals, int) or not 0 <= decimals <= 3:
        raise TemplateError(f"{ctx}: decimals must be 0 to 3", where=where)
    minimum, maximum = table.get("min"), table.get("max")
    if vtype == "number" and not (_finite(minimum) and _finite(maximum) and minimum <= maximum):
        # TOML reads nan and inf: a nan bound refuses every value, an infinite one accepts any.
        raise TemplateError(f"{ctx}: a number needs finite min <= max", where=where)
    if vtype == "number" and not -MAX_NUMBER <= float(minimum or 0) <= float(maximum or 0) <= MAX_NUMBER:
        raise TemplateError(f"{ctx}: min and max must lie within -{MAX_NUMBER:,} to {MAX_NUMBER:,}", where=where)
    domains = table.get("domains", [])
    if vtype == "url" and (not isinstance(domains, list) or not domains
                           or not all(isinstance(d, str) and _HOST.match(d) for d in domains)):
        raise TemplateError(f"{ctx}: a url variable needs domains = [the official hosts, lower case, e.g. "
                            "\"alerts.example.gov\"]; a link may go to exactly those hosts", where=where)
    places = table.get("places")
    if places is not None and places not in ("road", "area"):
        raise TemplateError(f"{ctx}: places must be \"road\" or \"area\"", where=where)
    return Variable(
        name=name,
        type=vtype,
        max_length=max_length,
        required=required,
        examples=example_map,
        places=places,
        choices=choices,
        format=fmt,
        minimum=float(minimum) if isinstance(minimum, int | float) else None,
        maximum=float(maximum) if isinstance(maximum, int | float) else None,
        decimals=decimals,
        domains=tuple(str(d).lower() for d in domains) if isinstance(domains, list) else (),
        time=time,
        allow=tuple(allow),
        label=label,
    )


def _label(raw: object, ctx: str, where: str) -> dict[str, str]:
    """The optional ``label = {ar = "…", en = "…"}``: what the console's form calls the variable, both languages."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) != set(LANGUAGES):
        raise TemplateError(f"{ctx}: label must be {{ar = \"…\", en = \"…\"}}, both languages and nothing else",
                            where=where)
    for lang in LANGUAGES:
        text = raw[lang]
        if not isinstance(text, str) or not text.strip() or text != text.strip() or len(text) > MAX_LABEL:
            raise TemplateError(f"{ctx}: label.{lang} must be 1 to {MAX_LABEL} characters of text, without "
                                "leading or trailing spaces", where=where)
        if any(unicodedata.category(ch).startswith("C") for ch in text):
            raise TemplateError(f"{ctx}: label.{lang} holds a control or format character", where=where)
    if not any("\u0600" <= ch <= "\u06ff" for ch in raw["ar"]):
        raise TemplateError(f"{ctx}: label.ar must be written in Arabic", where=where)
    return {lang: raw[lang] for lang in LANGUAGES}


def _time_rule(table: Mapping[str, Any], vtype: str, ctx: str, where: str, example: str) -> TimeRule | None:
    """A datetime variable's when / within_hours / after, and an example that is relative or has an offset."""
    keys = ("when", "within_hours", "after")
    if vtype != "datetime":
        if any(k in table for k in keys):
            raise TemplateError(f"{ctx}: when, within_hours and after are for datetime variables", where=where)
        return None
    when, within, after = (table.get(k) for k in keys)
    if when not in WHEN:
        raise TemplateError(f"{ctx}: when must be one of {', '.join(WHEN)} (is the time in the future, the past, "
                            "or either?)", where=where)
    if not isinstance(within, int | float) or isinstance(within, bool) or not 0 < within <= MAX_WITHIN_HOURS:
        raise TemplateError(f"{ctx}: within_hours must be a number of hours from 0 to {MAX_WITHIN_HOURS:g} "
                            "(how far from now the time may lie)", where=where)
    if after is not None and not isinstance(after, str):
        raise TemplateError(f"{ctx}: after must name another datetime variable", where=where)
    try:
        if is_relative(example):
            relative_moment(example, 0.0, _UTC)
        elif datetime.fromisoformat(example).utcoffset() is None:
            raise ValueError("no UTC offset")
    except ValueError as exc:
        raise TemplateError(f"{ctx}: example {example!r} is neither a relative time (now, +6h, -10m, "
                            f"+1d 22:00) nor ISO 8601 with an offset: {exc}", where=where) from None
    return TimeRule(when=when, within_hours=float(within), after=after)


def check_order(variables: list[Variable], where: str) -> None:
    """Each ``after`` names another datetime variable, and no chain of them loops."""
    times = {v.name: v.time for v in variables if v.time is not None}
    for name, rule in times.items():
        if rule.after is None:
            continue
        if rule.after not in times or rule.after == name:
            raise TemplateError(f"variable {name!r}: after = {rule.after!r} must name another datetime variable",
                                where=where)
        seen: set[str] = {name}
        current: str | None = rule.after
        while current is not None:
            if current in seen:
                raise TemplateError(f"variable {name!r}: its after = ... chain comes back to itself", where=where)
            seen.add(current)
            current = times[current].after
