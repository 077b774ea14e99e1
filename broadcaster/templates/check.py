"""``broadcaster templates check``: prove every template is safe to fire.

A template fails when its languages use different placeholders, a placeholder
names no variable, a variable is never used, one of its own words breaks the
content rules (a bidi or control character anywhere, a link, phone number or
emoji in a choice label), an example does not validate at this moment (time
rules included), its approval is missing or stale (the content, or the gazetteer
names it renders, changed), or its **worst case** (every variable at its
longest) does not fit a channel it targets, exercise marker included. Nothing
is ever truncated: a text that does not fit is a problem to fix at approval
time, not at 3 a.m. during a flood.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from broadcaster.errors import InputError, TemplateError
from broadcaster.templates.catalogue import (
    LANGUAGES,
    OPTIONAL_FORMS,
    PLACEHOLDER,
    Catalogue,
    Template,
    Variable,
    forms_of,
)
from broadcaster.templates.content import control_problem, link_problem, text_problem
from broadcaster.templates.gazetteer import Gazetteer
from broadcaster.templates.render import Forms, Rendered, follow_up_markers, isolate, mark, render_forms
from broadcaster.templates.variables import example_inputs, format_moment, format_number, resolve
from broadcaster.templates.verify_line import public_url_problem, with_verify_line, worst_code


class Target(Protocol):
    """Where a template may go, as its channel kind shapes and measures it.

    Built by the application layer from the channel registry
    (``broadcaster.channels.registry.targets``): templates never import channels.
    """

    @property
    def name(self) -> str:
        """How problems name it, e.g. ``channel 'sms-residents'``."""

    @property
    def kind(self) -> str:
        """The channel kind; a template is checked only against kinds it targets."""

    def render(self, forms: Forms) -> list[Rendered]:
        """The messages this target would send for ``forms``, measured."""

    def measure_piece(self, text: str) -> int:
        """How this target's provider counts one variable's display."""


def check_catalogue(catalogue: Catalogue, tz: ZoneInfo, targets: Sequence[Target], *,
                    now: float | None = None, public_url: str | None = None) -> list[str]:
    """Every problem in every template, one line each, naming file and field.

    The worst case of each template is proved against every target of a kind it goes to;
    examples are resolved and checked at ``now`` (default: this moment). ``public_url`` is
    ``[broadcaster] public_url``: a template with ``verify_line = true`` is measured with its
    line, and is a problem without one.
    """
    problems: list[str] = []
    for template_id in catalogue.ids():
        try:
            template = catalogue.get(template_id)
        except TemplateError as exc:
            problems.append(str(exc))
            continue
        problems += [f"{template.path}: {p}"
                     for p in check_template(template, catalogue.gazetteer, tz, targets, now=now,
                                             public_url=public_url)]
    return problems


def check_template(template: Template, gazetteer: Gazetteer, tz: ZoneInfo, targets: Sequence[Target], *,
                   now: float | None = None, public_url: str | None = None) -> list[str]:
    """Every problem of one template (approval last), one line each."""
    at = time.time() if now is None else now
    problems = _placeholder_problems(template) + _word_problems(template)
    line_problem = public_url_problem(public_url) if template.verify_line else None
    if line_problem is not None:
        problems.append(line_problem)
    for variable in template.variables:
        problems += _variable_problems(variable, gazetteer, tz)
    try:
        resolve(template, gazetteer, example_inputs(template, at, tz), tz, now=at)
    except InputError as exc:
        problems.append(f"examples: {exc}")
    # Worst-case lengths only make sense for a well-formed template, but a stale or
    # missing approval must not hide them: the approver has to see them before approving.
    if not problems:
        problems += worst_case_problems(template, gazetteer, tz, targets, public_url=public_url)
    state = template.staleness()
    if state == "missing":
        problems.append("[approval]: missing; run `broadcaster templates approve ID` (as an approver) after review")
    elif state is not None:
        problems.append(f"[approval] sha256: {state}; review it and approve again")
    return problems


def _word_problems(template: Template) -> list[str]:
    """The template's own words obey the content rules: nothing invisible anywhere, plain choice labels."""
    problems: list[str] = []
    fixed = [("title", lang, template.title[lang]) for lang in LANGUAGES]
    fixed += [("[cap] event", lang, template.event[lang]) for lang in LANGUAGES]
    fixed += [(f"[text.{lang}] {form}", lang, line) for lang in LANGUAGES for form in forms_of(template)
              for line in template.text[lang][form].split("\n")]
    for where, lang, text in fixed:
        problem = control_problem(text)
        if problem is not None:
            problems.append(f"{where} ({lang}): {problem}")
    # An optional form goes out on its own (a cell broadcast): no link, nor anything a phone turns into one.
    for form in OPTIONAL_FORMS:
        for lang in LANGUAGES if form in template.text["ar"] else ():
            fixed_words = PLACEHOLDER.sub(" ", template.text[lang][form])
            problem = link_problem(fixed_words)
            if problem is not None:
                problems.append(f"[text.{lang}] {form}: {problem}")
    for variable in template.variables:
        for key, labels in variable.choices.items():
            for lang, label in labels.items():
                problem = text_problem(label, lang)
                if problem is not None:
                    problems.append(f"variable {variable.name!r}: choice {key!r} ({lang}): {problem}")
    return problems


def _placeholder_problems(template: Template) -> list[str]:
    problems: list[str] = []
    declared = {v.name for v in template.variables}
    used: set[str] = set()
    for form in forms_of(template):
        found = {lang: set(PLACEHOLDER.findall(template.text[lang][form])) for lang in LANGUAGES}
        if found["ar"] != found["en"]:
            only_ar, only_en = sorted(found["ar"] - found["en"]), sorted(found["en"] - found["ar"])
            problems.append(
                f"[text] {form}: Arabic and English use different placeholders "
                f"(only in ar: {only_ar or '-'}; only in en: {only_en or '-'})"
            )
        for lang in LANGUAGES:
            text = template.text[lang][form]
            for name in sorted(found[lang] - declared):
                problems.append(f"[text.{lang}] {form}: unknown variable {{{name}}}")
            stray = PLACEHOLDER.sub("", text)
            if "{" in stray or "}" in stray:
                problems.append(f"[text.{lang}] {form}: a brace that is not a {{variable}} placeholder")
            if re.search(r"https?://|www\.", text):
                problems.append(f"[text.{lang}] {form}: links in template text need a url variable")
            used |= found[lang]
    for name in sorted(declared - used):
        problems.append(f"variable {name!r}: declared but never used in any text")
    return problems


def _variable_problems(variable: Variable, gazetteer: Gazetteer, tz: ZoneInfo) -> list[str]:
    problems: list[str] = []
    for label, names in _fixed_displays(variable, gazetteer):
        for lang, text in names.items():
            if len(text) > variable.max_length:
                problems.append(
                    f"variable {variable.name!r}: {label} is {len(text)} characters in {lang}, "
                    f"over max_length {variable.max_length}"
                )
    if variable.type in ("datetime", "number"):
        # A valid date or number whose display is over max_length would be refused at fire time.
        for lang in LANGUAGES:
            longest = max(candidates(variable, gazetteer, tz, lang), key=len)
            if len(longest) > variable.max_length:
                problems.append(
                    f"variable {variable.name!r}: a valid {variable.type} displays as {longest!r}, "
                    f"{len(longest)} characters in {lang}, over max_length {variable.max_length}"
                )
    return problems


def _fixed_displays(variable: Variable, gazetteer: Gazetteer) -> list[tuple[str, dict[str, str]]]:
    if variable.type == "place":
        return [(f"place {p.code!r}", dict(p.names)) for p in gazetteer.of_type(variable.places)]
    if variable.type == "enum":
        return [(f"choice {key!r}", dict(labels)) for key, labels in variable.choices.items()]
    return []


def candidates(variable: Variable, gazetteer: Gazetteer, tz: ZoneInfo, lang: str) -> list[str]:
    """Every display form a variable could take that may be the longest, in ``lang``."""
    n = variable.max_length
    if variable.type == "text":
        # Allowed text is BMP, weight 1 on X and one septet in GSM-7; a Latin letter
        # in Arabic adds the two isolate characters, the worst of both worlds.
        return ["A" + "ب" * (n - 1)] if lang == "ar" else ["W" * n]
    if variable.type in ("place", "enum"):
        return [names[lang] for _, names in _fixed_displays(variable, gazetteer)]
    if variable.type == "number":
        assert variable.minimum is not None and variable.maximum is not None
        step = 10.0 ** -variable.decimals
        values = {variable.minimum, variable.maximum, max(variable.minimum, variable.maximum - step)}
        return [format_number(v, variable.decimals, lang) for v in values]
    if variable.type == "datetime":
        start = datetime(2027, 1, 1, 23, 59, tzinfo=tz)
        moments = [start + timedelta(days=d, hours=h) for d in range(0, 365, 3) for h in (0, -11)]
        return [format_moment(m, variable.format, lang, tz) for m in moments]
    if variable.type == "url":
        host = max(variable.domains, key=len)
        return [("https://" + host + "/" + "a" * n)[: max(n, len(host) + 8)]]
    raise AssertionError(variable.type)


def worst_display(
    template: Template, gazetteer: Gazetteer, tz: ZoneInfo, measure: Callable[[str], int]
) -> dict[str, dict[str, str]]:
    """Each variable at its longest as ``measure`` counts it (a target's ``measure_piece``), per language."""

    def longest(variable: Variable, lang: str) -> str:
        return max(candidates(variable, gazetteer, tz, lang), key=lambda s: measure(isolate(s, lang)))

    return {v.name: {lang: longest(v, lang) for lang in LANGUAGES} for v in template.variables}


def worst_case_problems(
    template: Template, gazetteer: Gazetteer, tz: ZoneInfo, targets: Sequence[Target], *,
    public_url: str | None = None,
) -> list[str]:
    """Targets whose messages would not fit with every variable at its longest, with or without the exercise
    marker and the longest update or reminder marker, and with the template's verification line (under
    ``public_url``) when it asks for one."""
    problems: list[str] = []
    displays: dict[str, dict[str, dict[str, str]]] = {}  # per kind: every target of a kind measures alike
    for target in targets:
        if target.kind not in template.kinds:
            continue
        display = displays.get(target.kind)
        if display is None:
            display = displays[target.kind] = worst_display(template, gazetteer, tz, target.measure_piece)
        # An update or a reminder carries its marker: the longest of them, as this target measures it.
        measure = target.measure_piece
        longest = {lang: max((m[lang] for m in follow_up_markers()), key=measure) for lang in LANGUAGES}
        for exercise, marker in ((False, None), (True, None), (False, longest), (True, longest)):
            forms = mark(render_forms(template, display, exercise=exercise), marker)
            if template.verify_line and public_url:
                forms = with_verify_line(forms, public_url, worst_code())
            for rendered in target.render(forms):
                if rendered.fits:
                    continue
                detail = f" ({rendered.encoding})" if rendered.encoding else ""
                problems.append(
                    f"worst case does not fit {target.name} ({target.kind}, {rendered.language}"
                    f"{', exercise' if exercise else ''}{', as a reminder or update' if marker else ''}): "
                    f"{rendered.length} {rendered.unit}{detail}, "
                    f"limit {rendered.limit}; shorten the text or lower max_length"
                )
    return problems
