"""``broadcaster runbook check``: a runbook against the catalogue and channels.toml.

Every problem names the file and the step. Errors stop a runbook from being
rehearsed or run; warnings do not. The checks:

* each ``template`` exists and is approved, and ``templates/cancel.toml`` has
  approved wording to correct it (its ``original_event`` choices are keyed by
  template id): a mistaken alert must always be cancellable;
* ``update`` / ``cancel`` name an earlier template step;
* every variable is one the template declares, every required one is given, and
  with the example inputs every value passes the template's own checks;
* every ``{input:NAME}`` names a declared input (shifts only on datetime inputs);
* channel selections and areas exist in channels.toml and the gazetteer;
* timing is possible: durations parse and are not negative, ``every`` has an
  ``until`` (a later step or a time), and no ``at`` comes before the step before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from broadcaster.config import Config
from broadcaster.errors import InputError
from broadcaster.runbooks.durations import format_duration
from broadcaster.runbooks.inputs import Inputs, resolve_inputs, step_areas, step_vars, time_of
from broadcaster.runbooks.model import Runbook, Step
from broadcaster.runbooks.refs import Ref, RunbookError, Value
from broadcaster.runbooks.timeline import MAX_OCCURRENCES
from broadcaster.selection import select_channels
from broadcaster.templates.catalogue import CANCEL_TEMPLATE, Catalogue, Template
from broadcaster.templates.variables import resolve
from broadcaster.timefmt import iso_seconds


@dataclass(frozen=True, slots=True)
class Problem:
    where: str
    message: str
    level: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class RunbookCheckFailed(RunbookError):
    """The runbook has errors; ``problems`` lists every one."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.level == "error"]
        more = f" (and {len(errors) - 1} more: run `broadcaster runbook check`)" if len(errors) > 1 else ""
        super().__init__(errors[0].message + more, where=errors[0].where)


def require_clean(problems: list[Problem]) -> None:
    if any(p.level == "error" for p in problems):
        raise RunbookCheckFailed(problems)


def check_runbook(runbook: Runbook, config: Config, catalogue: Catalogue, *, inputs: Inputs | None = None,
                  start: float | None = None) -> list[Problem]:
    """Every problem of ``runbook``; ``inputs`` default to the examples, resolved from ``start`` (now)."""
    checker = _Checker(runbook, config, catalogue)
    start = time.time() if start is None else start
    checker.structure()
    if inputs is None:
        try:
            inputs = resolve_inputs(runbook, {}, start=start, tz=config.timezone, use_examples=True)
        except RunbookError as exc:
            checker.error(exc.where or runbook.source, str(exc).removeprefix(f"{exc.where}: "))
    if inputs is not None and not checker.failed:
        checker.values(inputs, start)
        checker.timing(inputs, start)
    return checker.problems


class _Checker:
    def __init__(self, runbook: Runbook, config: Config, catalogue: Catalogue) -> None:
        self.runbook = runbook
        self.config = config
        self.catalogue = catalogue
        self.problems: list[Problem] = []
        self.templates: dict[str, Template] = {}  # step id -> the template its alert uses
        self.cancel_template: Template | None = None

    @property
    def failed(self) -> bool:
        return any(p.level == "error" for p in self.problems)

    def error(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def warn(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message, "warning"))

    # --- structure: names, references, templates, channels --------------------------

    def structure(self) -> None:
        try:
            self.cancel_template = self.catalogue.approved(CANCEL_TEMPLATE)
        except InputError as exc:
            self.error(self.runbook.source, f"the cancel template is not usable, so no alert could be corrected: {exc}")
        for step in self.runbook.steps:
            self.references(step)
            if step.action == "template":
                self.template_step(step)
            else:
                self.follow_up_step(step)
            self.repeat(step)

    def references(self, step: Step) -> None:
        values: list[tuple[str, Value]] = [(f"var {n!r}", v) for n, v in (step.vars or {}).items()]
        values += [("key 'areas'", a) for a in step.areas]
        values += [(key, v) for key, v in (("key 'at'", step.at), ("key 'until'", step.until_at)) if v is not None]
        for what, value in values:
            ref = value.ref
            if ref is None or ref.source != "input":
                continue
            assert ref.name is not None
            declared = self.runbook.input(ref.name)
            if declared is None:
                names = ", ".join(i.name for i in self.runbook.inputs) or "none declared"
                self.error(step.where, f"{what}: {ref.text} refers to input {ref.name!r}, which the runbook does "
                                       f"not declare in [[inputs]] (inputs: {names})")
            elif ref.offset_s and declared.type != "datetime":
                self.error(step.where, f"{what}: {ref.text} shifts input {ref.name!r}, which is not type = "
                                       "\"datetime\"")
            elif what in ("key 'at'", "key 'until'") and declared.type != "datetime":
                self.error(step.where, f"{what}: input {ref.name!r} is used as a time, so it must be declared "
                                       "type = \"datetime\"")

    def template_step(self, step: Step) -> None:
        try:
            template = self.catalogue.approved(step.target)
        except InputError as exc:
            if step.target not in self.catalogue.ids():
                self.error(step.where, f"unknown template {step.target!r} (known: {', '.join(self.catalogue.ids())})")
            else:
                self.error(step.where, f"template {step.target!r} cannot be fired: {exc}")
            return
        self.templates[step.id] = template
        self.variables(step, template, require_all=True)
        self.cancel_path(step, template)
        try:
            select_channels(self.config.channels, step.channels, kinds=template.kinds, areas=(), mode=None,
                            known_areas=self.catalogue.gazetteer.area_codes())
        except InputError as exc:
            self.error(step.where, f"channels = {step.channels!r}: {str(exc).removeprefix('--channels: ')} "
                                   f"(in {self.config.path})")
        areas = self.catalogue.gazetteer.area_codes()
        for value in step.areas:
            if value.fixed is not None and value.fixed["en"] not in areas:
                self.error(step.where, f"key 'areas': {value.fixed['en']!r} is not an area in the gazetteer")

    def follow_up_step(self, step: Step) -> None:
        target = self.runbook.step(step.target)
        if target is None:
            self.error(step.where, f"{step.action} = {step.target!r}: there is no step {step.target!r}")
            return
        if target.index >= step.index:
            self.error(step.where, f"{step.action} = {step.target!r}: that step comes later (or is this one); a "
                                   f"step can only {step.action} an alert fired before it")
            return
        if target.action != "template":
            self.error(step.where, f"{step.action} = {step.target!r}: that step is itself an {target.action}; "
                                   f"{step.action} the step that fired the original alert ({target.target!r})")
            return
        template = self.templates.get(target.id)
        if template is None:
            return  # the target's own error is reported there
        self.templates[step.id] = template
        if step.action == "update":
            self.variables(step, template, require_all=False)

    def variables(self, step: Step, template: Template, *, require_all: bool) -> None:
        declared = {v.name: v for v in template.variables}
        for name, value in (step.vars or {}).items():
            variable = declared.get(name)
            if variable is None:
                self.error(step.where, f"var {name!r}: template {template.id!r} has no variable {name!r} "
                                       f"(it has: {', '.join(declared)})")
            elif value.ref is not None and value.ref.source == "now" and variable.type != "datetime":
                self.error(step.where, f"var {name!r}: {value.ref.text} is a time, but {name!r} is a {variable.type}")
        if require_all:
            for variable in template.variables:
                if variable.required and variable.name not in (step.vars or {}):
                    self.error(step.where, f"var {variable.name!r} is required by template {template.id!r} and is "
                                           "not given in vars")

    def cancel_path(self, step: Step, template: Template) -> None:
        if self.cancel_template is None:
            return
        choices = self.cancel_template.variable("original_event")
        if choices is None or template.id not in choices.choices:
            self.error(step.where, f"template {template.id!r} has no cancel wording: {CANCEL_TEMPLATE}.toml has no "
                                   f"original_event choice {template.id!r}, so a mistaken alert could not be "
                                   "corrected. Add the wording and approve the cancel template.")

    def repeat(self, step: Step) -> None:
        if step.every is None:
            if step.until is not None or step.until_at is not None:
                self.error(step.where, "'until' without 'every': until ends a repeating step; add every = \"2h\"")
            return
        if step.action == "cancel":
            self.error(step.where, "a cancel cannot repeat: remove 'every'")
        if step.until is None and step.until_at is None:
            self.error(step.where, "'every' without 'until': a repeating step needs until = \"<later step id>\" "
                                   "(or a date and time) so it is sure to stop")
            return
        if step.until is not None:
            until = self.runbook.step(step.until)
            if until is None:
                self.error(step.where, f"until = {step.until!r}: there is no step {step.until!r}")
            elif until.index <= step.index:
                self.error(step.where, f"until = {step.until!r}: the until step must come after this step")

    # --- values and timing, with the example (or given) inputs ----------------------

    def values(self, inputs: Inputs, start: float) -> None:
        """Each step's variables as they would be when it first fires (its time rules checked then)."""
        tz = self.config.timezone
        gathered: dict[str, Inputs] = {}
        planned = self.planned(inputs, start)
        for step in self.runbook.steps:
            template = self.templates.get(step.id)
            if template is None or step.action == "cancel":
                continue
            now = planned.get(step.id, start)
            try:
                values = step_vars(step, inputs, now=now, tz=tz)
            except RunbookError as exc:
                self.error(step.where, str(exc).removeprefix(f"{exc.where}: "))
                continue
            if step.action == "update":
                values = {**gathered.get(step.target, {}), **values}
            gathered[step.id] = values
            try:
                resolved = resolve(template, self.catalogue.gazetteer, values, tz, now=now)
            except InputError as exc:
                self.error(step.where, f"with the example inputs: {str(exc).removeprefix(f'{exc.where}: ')}")
                continue
            if step.action == "template":
                self.coverage(step, template, resolved.areas, inputs)

    def coverage(self, step: Step, template: Template, var_areas: tuple[str, ...], inputs: Inputs) -> None:
        """With the example inputs, the selection must reach at least one channel in the alert's area."""
        gazetteer = self.catalogue.gazetteer
        try:
            areas = step_areas(step, inputs, now=time.time(), tz=self.config.timezone) or var_areas
        except RunbookError as exc:
            self.error(step.where, str(exc).removeprefix(f"{exc.where}: "))
            return
        expanded: list[str] = []
        for area in areas:
            place = gazetteer.get(area)
            expanded += [area, *(place.areas if place else ())]
        try:
            select_channels(self.config.channels, step.channels, kinds=template.kinds, areas=tuple(expanded),
                            mode=None, known_areas=gazetteer.area_codes())
        except InputError as exc:
            self.error(step.where, f"with the example inputs, channels = {step.channels!r} reaches no channel in "
                                   f"{', '.join(areas)}: {str(exc).removeprefix('--channels ')}")

    def planned(self, inputs: Inputs, start: float) -> dict[str, float]:
        """When each step would first fire for a run started at ``start`` (steps run in order)."""
        anchor, planned = start, {}
        for step in self.runbook.steps:
            due = anchor + (step.after or 0.0)
            if step.at is not None:
                due = time_of(step.at, inputs, tz=self.config.timezone, where=step.where)
            planned[step.id] = anchor = max(anchor, due)
        return planned

    def timing(self, inputs: Inputs, start: float) -> None:
        tz = self.config.timezone
        anchor, previous = start, None
        planned: dict[str, float] = {}
        for step in self.runbook.steps:
            due = anchor + (step.after or 0.0)
            if step.at is not None:
                due = time_of(step.at, inputs, tz=tz, where=step.where)
                if previous is not None and due < anchor:
                    self.error(step.where, f"impossible timing: at = {_shown(step.at)} ({iso_seconds(due, tz)}) is "
                                           f"before step {previous.id!r} ({iso_seconds(anchor, tz)}); steps run in "
                                           "order")
                elif previous is None and due < start:
                    self.warn(step.where, f"with the example inputs, at = {iso_seconds(due, tz)} is before the run "
                                          "starts; a run started now would refuse it")
            planned[step.id] = anchor = max(anchor, due)
            previous = step
        for step in self.runbook.steps:
            if step.every is None:
                continue
            first = planned[step.id]
            end = planned.get(step.until) if step.until is not None else None
            if step.until_at is not None:
                end = time_of(step.until_at, inputs, tz=tz, where=step.where)
            if end is None:
                continue
            if end <= first:
                self.warn(step.where, f"never repeats: its until ({iso_seconds(end, tz)}) comes before its first "
                                      f"firing ({iso_seconds(first, tz)})")
            elif (end - first) / step.every > MAX_OCCURRENCES:
                self.warn(step.where, f"every {format_duration(step.every)} until {iso_seconds(end, tz)} would repeat "
                                      f"more than {MAX_OCCURRENCES} times; it stops after {MAX_OCCURRENCES}")


def _shown(value: Value) -> str:
    return value.ref.text if isinstance(value.ref, Ref) else (value.fixed or {}).get("en", "?")
