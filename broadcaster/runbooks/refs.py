"""Values in a runbook step: fixed values, and references to inputs or to the firing time.

``{input:NAME}`` stands for a runbook input, ``{input:NAME+2h}`` / ``{input:NAME-1d}``
for a datetime input shifted, ``{now}`` / ``{now+6h}`` for the time the step fires.
Anything else is a fixed value: a string or number for both languages, or
``{ ar = "...", en = "..." }`` for a text variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from broadcaster.errors import InputError
from broadcaster.runbooks.durations import DurationError, parse_datetime, parse_duration

LANGUAGES: Final = ("ar", "en")
_REF: Final = re.compile(
    r"^\{\s*(?:input:(?P<name>[a-z][a-z0-9_]*)|(?P<now>now))\s*(?:(?P<sign>[+-])\s*(?P<dur>[^{}\s]+)\s*)?\}$"
)


class RunbookError(InputError):
    """A runbook that cannot run as written; ``where`` names the file and the step."""


@dataclass(frozen=True, slots=True)
class Ref:
    """``{input:NAME±DURATION}`` or ``{now±DURATION}``."""

    source: str  # "input" | "now"
    name: str | None
    offset_s: float
    text: str


@dataclass(frozen=True, slots=True)
class Value:
    """One step value: a reference, or a fixed value per language."""

    ref: Ref | None = None
    fixed: Mapping[str, str] | None = None

    @property
    def text(self) -> str:
        if self.ref is not None:
            return self.ref.text
        assert self.fixed is not None
        return self.fixed["en"] if self.fixed["ar"] == self.fixed["en"] else f"{self.fixed['ar']} / {self.fixed['en']}"


def parse_ref(text: str, where: str) -> Ref:
    match = _REF.match(text.strip())
    if match is None:
        raise RunbookError(
            f"{text!r} is not a reference: write {{input:NAME}}, {{input:NAME+2h}}, {{input:NAME-1d}}, {{now}} "
            "or {now+6h}", where=where)
    offset = 0.0
    if match.group("dur"):
        try:
            offset = parse_duration(match.group("dur"))
        except DurationError as exc:
            raise RunbookError(f"in {text!r}: {exc}", where=where) from None
        if match.group("sign") == "-":
            offset = -offset
    if match.group("now"):
        return Ref("now", None, offset, text.strip())
    return Ref("input", match.group("name"), offset, text.strip())


def parse_value(value: Any, where: str) -> Value:
    if isinstance(value, bool):
        raise RunbookError(f"{value!r}: write true/false values as strings", where=where)
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str):
        if value.strip().startswith("{"):
            return Value(ref=parse_ref(value, where))
        return Value(fixed={lang: value for lang in LANGUAGES})
    if isinstance(value, dict) and set(value) == set(LANGUAGES) and all(isinstance(v, str) for v in value.values()):
        if any(v.strip().startswith("{") for v in value.values()):
            raise RunbookError("a reference stands for both languages: write it once, not in { ar, en }",
                               where=where)
        return Value(fixed={lang: value[lang] for lang in LANGUAGES})
    raise RunbookError(f"{value!r}: a value is a string, a number or {{ ar = ..., en = ... }}", where=where)


def time_value(value: Any, where: str) -> Value:
    if isinstance(value, str) and value.strip().startswith("{"):
        ref = parse_ref(value, where)
        if ref.source != "input":
            raise RunbookError(f"{value!r}: a time is a date and time or {{input:NAME}}; for a delay use 'after'",
                               where=where)
        return Value(ref=ref)
    try:
        moment = parse_datetime(value)
    except DurationError as exc:
        raise RunbookError(str(exc), where=where) from None
    iso = moment.isoformat()
    return Value(fixed={"ar": iso, "en": iso})
