"""Runbook inputs and references: from what the operator gave to each step's variables."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from broadcaster.runbooks.durations import DurationError, parse_datetime, resolve_datetime
from broadcaster.runbooks.model import Runbook, Step
from broadcaster.runbooks.refs import LANGUAGES, Ref, RunbookError, Value
from broadcaster.timefmt import MomentError, shifted

Inputs = dict[str, dict[str, str]]  # input name -> language -> value


def resolve_inputs(runbook: Runbook, given: Mapping[str, Mapping[str, str]], *, start: float, tz: ZoneInfo,
                   use_examples: bool) -> Inputs:
    """Every input's value: given, or its example when ``use_examples``; relative times made absolute.

    Every input is checked before anything is refused: one RunbookError names every missing input
    and every bad value (a single problem keeps its input in ``where``).
    """
    declared = [i.name for i in runbook.inputs]
    unknown = [name for name in given if name not in declared]
    if unknown:
        raise RunbookError(f"--input {', '.join(unknown)}: this runbook has no input "
                           f"{', '.join(repr(n) for n in unknown)} (it has: {', '.join(declared) or 'none'})",
                           where=runbook.source)
    values: Inputs = {}
    missing: list[str] = []
    problems: dict[str, str] = {}  # input -> what is wrong with its value
    for item in runbook.inputs:
        value = dict(given.get(item.name, {}))
        if not any(v.strip() for v in value.values()):
            if not use_examples:
                missing.append(item.name)
                continue
            value = dict(item.example)
        for lang in LANGUAGES:
            value.setdefault(lang, value.get("en") or value.get("ar") or "")
        if item.type == "datetime":
            if len(set(value.values())) != 1:
                problems[item.name] = "a datetime input takes one value for both languages"
                continue
            try:
                moment = resolve_datetime(value["en"], start, tz)
            except DurationError as exc:
                problems[item.name] = str(exc)
                continue
            iso = moment.isoformat(timespec="seconds")
            value = {lang: iso for lang in LANGUAGES}
        values[item.name] = value
    if not missing and len(problems) == 1:
        ((name, problem),) = problems.items()
        raise RunbookError(problem, where=f"{runbook.source}: input {name!r}")
    if len(missing) == 1 and not problems:
        item = next(i for i in runbook.inputs if i.name == missing[0])
        raise RunbookError(f"no value given: --input {item.name}=VALUE (example: {item.example['en']})",
                           where=f"{runbook.source}: input {item.name!r}")
    if missing or problems:
        examples = {i.name: i.example["en"] for i in runbook.inputs}
        parts = [f"no value given for inputs {', '.join(missing)}: give each with --input NAME=VALUE "
                 f"(examples: {', '.join(f'{n}={examples[n]}' for n in missing)})"] if missing else []
        parts += [f"{name}: {problem}" for name, problem in problems.items()]
        raise RunbookError("; ".join(parts), where=runbook.source)
    return values


def ref_value(ref: Ref, inputs: Mapping[str, Mapping[str, str]], *, now: float, tz: ZoneInfo,
              where: str) -> dict[str, str]:
    """The value a reference stands for when its step fires at ``now``."""
    if ref.source == "now":
        moment = datetime.fromtimestamp(now + ref.offset_s, tz).replace(microsecond=0)
        return {lang: moment.isoformat() for lang in LANGUAGES}
    assert ref.name is not None
    if ref.name not in inputs:
        raise RunbookError(f"{ref.text}: there is no input {ref.name!r}", where=where)
    value = dict(inputs[ref.name])
    if ref.offset_s:
        try:
            start = parse_datetime(value["en"])
        except DurationError:
            raise RunbookError(f"{ref.text}: only a datetime input can be shifted", where=where) from None
        try:
            moment = shifted(start, ref.offset_s, ref.text)
        except MomentError as exc:
            raise RunbookError(str(exc), where=where) from None
        return {lang: moment.isoformat() for lang in LANGUAGES}
    return value


def value_of(value: Value, inputs: Mapping[str, Mapping[str, str]], *, now: float, tz: ZoneInfo,
             where: str) -> dict[str, str]:
    if value.ref is not None:
        return ref_value(value.ref, inputs, now=now, tz=tz, where=where)
    assert value.fixed is not None
    return dict(value.fixed)


def time_of(value: Value, inputs: Mapping[str, Mapping[str, str]], *, tz: ZoneInfo, where: str) -> float:
    """Unix seconds of an ``at`` / ``until`` value."""
    text = value_of(value, inputs, now=0.0, tz=tz, where=where)["en"]
    try:
        return parse_datetime(text).timestamp()
    except DurationError as exc:
        raise RunbookError(str(exc), where=where) from None


def step_vars(step: Step, inputs: Mapping[str, Mapping[str, str]], *, now: float, tz: ZoneInfo) -> Inputs:
    """The step's variables, references filled in for a fire at ``now``."""
    return {name: value_of(v, inputs, now=now, tz=tz, where=f"{step.where}: var {name!r}")
            for name, v in (step.vars or {}).items()}


def step_areas(step: Step, inputs: Mapping[str, Mapping[str, str]], *, now: float, tz: ZoneInfo) -> tuple[str, ...]:
    return tuple(value_of(a, inputs, now=now, tz=tz, where=f"{step.where}: key 'areas'")["en"] for a in step.areas)
