"""The runbook format: ``runbooks/*.toml``, one procedure per file, id = file stem.

A runbook is a named, ordered list of steps. Each step fires one alert::

    name = { ar = "الاستجابة للسيول", en = "Flood response" }
    description = "Watch, warning, road closure, all-clear."

    [[inputs]]                      # given once, when the run starts
    name = "area"
    example = "DXB-HATTA"           # used by `rehearse` when no --input is given
    description = "Area under threat (gazetteer code)"

    [[inputs]]
    name = "until"
    type = "datetime"               # "value" (default) or "datetime"
    example = "+12h"                # ISO 8601 with offset, or relative to the start:
                                    # "now", "+2h", "-15m", "+1d 22:00" (local time)

    [[steps]]
    id = "watch"                    # lower_snake_case, unique
    note = "Flood watch, at once."  # optional, shown in timelines
    template = "flood_warning"      # exactly one action: template | update | cancel
    channels = "all"                # a channel selection (SEL): all | id,id | kind:KIND | area:CODE
    areas = ["{input:area}"]        # optional alert areas (default: from the variables)
    vars = { level = "watch", area = "{input:area}", until = "{input:until}" }

    [[steps]]
    id = "warning"
    update = "watch"                # an update of an earlier template step: same channels, threaded
    vars = { level = "warning" }    # only the values that change
    after = "2h"                    # timing: after = DURATION (after the previous step), or
    confirm = true                  #   at = DATETIME | "{input:NAME}" | "{input:NAME-1d}"
    every = "2h"                    # repeat, as updates, every 2 h ...
    until = "all_clear"             # ... until that later step fires (or until a DATETIME)

    [[steps]]
    id = "all_clear"
    template = "all_clear"
    after = "8h"
    confirm = true                  # wait for an operator (`broadcaster runbook confirm`)
    vars = { event = "flood", area = "{input:area}", ended = "{now}" }

Values in ``vars``: a string written as a whole in braces is a *reference*:
``{input:NAME}`` (a runbook input), ``{input:NAME+2h}`` / ``{input:NAME-1d}`` (a
datetime input shifted), ``{now}`` / ``{now+6h}`` (the time the step fires).
Anything else is a fixed value: a string or number for both languages, or
``{ ar = "...", en = "..." }`` for a text variable. Templates never allow braces
in a value, so the two can never be confused.

Steps run in order: a step becomes due once the step before it has fired
(``after`` counts from the time that step was due). A step with ``confirm``
waits, from its due time, for an operator. A step with ``every`` keeps
repeating (occurrence 1, 2, ... are updates of its occurrence 0) while the
next steps go ahead, until its ``until`` step fires.

This module only reads the file (syntax); :mod:`broadcaster.runbooks.check`
checks it against the catalogue and channels.toml.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from broadcaster.runbooks.durations import (
    DurationError,
    is_relative,
    parse_datetime,
    parse_duration,
    resolve_datetime,
)
from broadcaster.runbooks.refs import LANGUAGES, RunbookError, Value, parse_value, time_value
from broadcaster.text.files import FileProblem, read_text

ACTIONS: Final = ("template", "update", "cancel")
INPUT_TYPES: Final = ("value", "datetime")
_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_STEP_KEYS: Final = {"id", "note", *ACTIONS, "channels", "areas", "vars", "after", "at", "every", "until", "confirm"}
_TOP_KEYS: Final = {"name", "description", "inputs", "steps"}
_INPUT_KEYS: Final = {"name", "example", "description", "type"}


@dataclass(frozen=True, slots=True)
class RunbookInput:
    name: str
    example: Mapping[str, str]  # language -> value
    description: str
    type: str  # value | datetime


@dataclass(frozen=True)
class Step:
    id: str
    index: int
    action: str  # template | update | cancel
    target: str  # a template id, or the id of the step updated or cancelled
    where: str
    note: str = ""
    channels: str = "all"
    areas: tuple[Value, ...] = ()
    vars: Mapping[str, Value] | None = None
    after: float | None = None
    at: Value | None = None
    every: float | None = None
    until: str | None = None  # a step id, or (see until_at) a time
    until_at: Value | None = None
    confirm: bool = False

    @property
    def label(self) -> str:
        if self.action == "template":
            return self.target
        return f"{self.action} of {self.target}"


@dataclass(frozen=True)
class Runbook:
    id: str
    source: str  # the file, or a description of where the runbook came from
    name: Mapping[str, str]
    description: str
    inputs: tuple[RunbookInput, ...]
    steps: tuple[Step, ...]
    raw: Mapping[str, Any]  # JSON-safe: stored with every run so a restart runs what was started

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def input(self, name: str) -> RunbookInput | None:
        return next((i for i in self.inputs if i.name == name), None)


def load_runbook(path: str | Path) -> Runbook:
    """Read a runbook file; a syntax or structure error raises RunbookError naming file and step."""
    file = Path(path)
    try:
        raw = tomllib.loads(read_text(file, "runbook file"))
    except FileProblem as exc:
        raise RunbookError(str(exc), where=str(file)) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise RunbookError(f"TOML syntax error: {exc}", where=f"{file}:{match.group(1)}" if match else str(file)) \
            from None
    return parse_runbook(normalize(raw, str(file)), runbook_id=file.stem, source=str(file))


def normalize(value: Any, where: str) -> Any:
    """TOML datetimes become ISO strings, so the runbook can be stored as JSON with its run."""
    if isinstance(value, dict):
        return {k: normalize(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, where) for v in value]
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RunbookError(f"{value.isoformat()}: a date and time needs a UTC offset, e.g. +04:00", where=where)
        return value.isoformat()
    if isinstance(value, date | time):
        raise RunbookError(f"{value.isoformat()}: write a full date and time with a UTC offset", where=where)
    return value


def parse_runbook(raw: Mapping[str, Any], *, runbook_id: str, source: str) -> Runbook:
    """Build a Runbook from its (normalized) TOML table."""
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise RunbookError(f"unknown key(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(_TOP_KEYS))})",
                           where=source)
    name = raw.get("name")
    if isinstance(name, str):
        name = {"ar": name, "en": name}
    if not isinstance(name, dict) or any(not isinstance(name.get(lang), str) or not name[lang] for lang in LANGUAGES):
        raise RunbookError("key 'name': needs { ar = \"...\", en = \"...\" }", where=source)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise RunbookError("key 'description': must be a string", where=source)

    inputs: list[RunbookInput] = []
    raw_inputs = raw.get("inputs", [])
    if not isinstance(raw_inputs, list):
        raise RunbookError("[[inputs]] must be an array of tables", where=source)
    for index, table in enumerate(raw_inputs, start=1):
        item = _input(table, index, source)
        if any(i.name == item.name for i in inputs):
            raise RunbookError(f"input {item.name!r}: declared twice", where=source)
        inputs.append(item)

    raw_steps = raw.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise RunbookError("no [[steps]]: a runbook needs at least one step", where=source)
    steps: list[Step] = []
    for index, table in enumerate(raw_steps):
        step = _step(table, index, source)
        if any(s.id == step.id for s in steps):
            raise RunbookError(f"step id {step.id!r} is used twice", where=step.where)
        steps.append(step)
    return Runbook(id=runbook_id, source=source, name={lang: name[lang] for lang in LANGUAGES},
                   description=description.strip(), inputs=tuple(inputs), steps=tuple(steps), raw=dict(raw))


def _input(table: Any, index: int, source: str) -> RunbookInput:
    if not isinstance(table, dict):
        raise RunbookError(f"[[inputs]] #{index}: not a table", where=source)
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RunbookError(f"[[inputs]] #{index}: key 'name' must be lower_snake_case", where=source)
    where = f"{source}: input {name!r}"
    unknown = set(table) - _INPUT_KEYS
    if unknown:
        raise RunbookError(f"unknown key(s): {', '.join(sorted(unknown))}", where=where)
    kind = table.get("type", "value")
    if kind not in INPUT_TYPES:
        raise RunbookError(f"key 'type': {kind!r} is not one of {', '.join(INPUT_TYPES)}", where=where)
    description = table.get("description", "")
    if not isinstance(description, str):
        raise RunbookError("key 'description': must be a string", where=where)
    example = table.get("example")
    if isinstance(example, int | float) and not isinstance(example, bool):
        example = str(example)
    if isinstance(example, str):
        examples = {lang: example for lang in LANGUAGES}
    elif isinstance(example, dict) and all(isinstance(example.get(lang), str) for lang in LANGUAGES):
        examples = {lang: example[lang] for lang in LANGUAGES}
    else:
        raise RunbookError("key 'example': needs an example value (a string, or { ar = ..., en = ... })",
                           where=where)
    if kind == "datetime":
        if examples["ar"] != examples["en"]:
            raise RunbookError("a datetime input has one example for both languages", where=where)
        check_datetime_text(examples["en"], f"{where}: key 'example'")
    return RunbookInput(name=name, example=examples, description=description.strip(), type=kind)


_SYNTAX_START: Final = datetime(2050, 1, 1, tzinfo=UTC).timestamp()


def check_datetime_text(text: str, where: str) -> None:
    """An absolute ISO 8601 datetime with offset, or a start-relative one ("+2h", "+1d 22:00", "now")."""
    try:
        if is_relative(text):
            # Only the syntax is checked here: any start inside the dates the system handles will do.
            resolve_datetime(text, _SYNTAX_START, ZoneInfo("UTC"))
        else:
            parse_datetime(text)
    except DurationError as exc:
        raise RunbookError(str(exc), where=where) from None


def _step(table: Any, index: int, source: str) -> Step:
    if not isinstance(table, dict):
        raise RunbookError(f"[[steps]] #{index + 1}: not a table", where=source)
    step_id = table.get("id")
    if not isinstance(step_id, str) or not _NAME.match(step_id):
        raise RunbookError(f"[[steps]] #{index + 1}: key 'id' must be lower_snake_case", where=source)
    where = f"{source}: step {step_id!r}"
    unknown = set(table) - _STEP_KEYS
    if unknown:
        raise RunbookError(f"unknown key(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(_STEP_KEYS))})",
                           where=where)
    actions = [a for a in ACTIONS if a in table]
    if len(actions) != 1:
        raise RunbookError("needs exactly one action: template = \"ID\", update = \"STEP\" or cancel = \"STEP\"",
                           where=where)
    action = actions[0]
    target = table[action]
    if not isinstance(target, str) or not target:
        raise RunbookError(f"key {action!r}: must name a {'template' if action == 'template' else 'step'}",
                           where=where)
    note = table.get("note", "")
    if not isinstance(note, str):
        raise RunbookError("key 'note': must be a string", where=where)

    channels = table.get("channels", "all")
    if not isinstance(channels, str) or not channels.strip():
        raise RunbookError("key 'channels': a selection such as \"all\", \"id,id\", \"kind:sms\" or \"area:CODE\"",
                           where=where)
    raw_areas = table.get("areas", [])
    if isinstance(raw_areas, str):
        raw_areas = [raw_areas]
    if not isinstance(raw_areas, list) or not all(isinstance(a, str) and a for a in raw_areas):
        raise RunbookError("key 'areas': a list of area codes (or \"{input:NAME}\")", where=where)
    if action != "template" and ("channels" in table or "areas" in table):
        raise RunbookError(f"an {action} reaches the channels and areas of the step it follows; remove "
                           "'channels' and 'areas'", where=where)
    raw_vars = table.get("vars", {})
    if not isinstance(raw_vars, dict):
        raise RunbookError("key 'vars': a table such as { level = \"watch\", area = \"{input:area}\" }", where=where)
    if action == "cancel" and raw_vars:
        raise RunbookError("a cancel takes no vars: its wording is the pre-approved correction", where=where)
    values = {name: parse_value(v, f"{where}: var {name!r}") for name, v in raw_vars.items()}

    after = at = every = until_at = None
    if "after" in table and "at" in table:
        raise RunbookError("use either 'after' (a delay) or 'at' (a time), not both", where=where)
    if "after" in table:
        after = _duration(table["after"], f"{where}: key 'after'")
    if "at" in table:
        at = time_value(table["at"], f"{where}: key 'at'")
    if "every" in table:
        every = _duration(table["every"], f"{where}: key 'every'")
        if every <= 0:
            raise RunbookError("key 'every': must be longer than zero", where=where)
    until = table.get("until")
    if until is not None:
        if not isinstance(until, str) or not until:
            raise RunbookError("key 'until': a later step id, or a date and time", where=where)
        if not _NAME.match(until):
            until_at = time_value(until, f"{where}: key 'until'")
            until = None
    confirm = table.get("confirm", False)
    if not isinstance(confirm, bool):
        raise RunbookError("key 'confirm': must be true or false", where=where)
    return Step(
        id=step_id, index=index, action=action, target=target, where=where, note=note.strip(),
        channels=channels.strip(), areas=tuple(parse_value(a, f"{where}: key 'areas'") for a in raw_areas),
        vars=values, after=after, at=at, every=every, until=until, until_at=until_at, confirm=confirm,
    )


def _duration(value: Any, where: str) -> float:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise RunbookError(str(exc), where=where) from None
