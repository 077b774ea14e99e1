"""Load templates: one TOML file per template, id = file stem.

A template's approval is bound to the sha256 of every word it can render: every
table of its file except ``[approval]``, and the gazetteer names its ``place``
variables can pick, serialised canonically together. Comments and layout do not
count; any change to a text, a variable, a CAP field or one of those gazetteer
names voids the approval (``templates check`` says which of the two changed).
Approving is :mod:`broadcaster.templates.approval`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from broadcaster.errors import TemplateError
from broadcaster.templates.fields import LANGUAGES, NAME, VARIABLE_TYPES, Variable, check_order, parse_variable
from broadcaster.templates.gazetteer import Gazetteer, load_gazetteer
from broadcaster.text.files import FileProblem, read_text

__all__ = ["LANGUAGES", "VARIABLE_TYPES", "Approval", "Catalogue", "Template", "Variable", "content_hash",
           "forms_of", "parse_template", "read_toml", "template_detail"]

FORMS: Final = ("headline", "short", "long")
# Forms a template may add, in both languages, for a kind that sends its own wording: ``cell_broadcast`` (short,
# no links, the action first). A template whose ``kinds`` name the kind must have it.
OPTIONAL_FORMS: Final = {"cell_broadcast": "cell_broadcast"}  # form -> the kind that needs it
CAP_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "category": ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
                 "CBRNE", "Other"),
    "urgency": ("Immediate", "Expected", "Future", "Past", "Unknown"),
    "severity": ("Extreme", "Severe", "Moderate", "Minor", "Unknown"),
    "certainty": ("Observed", "Likely", "Possible", "Unlikely", "Unknown"),
    "responseType": ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"),
}
# [cap] keys beside the CAP values: the <event> and <instruction> per language, and the datetime variable
# (an end time: "until", "ends") that the alert's expiry follows instead of expires_hours when it is given.
CAP_EXTRA: Final = frozenset({"event", "instruction", "expires_from"})
GAZETTEER_FILE: Final = "gazetteer.toml"
CANCEL_TEMPLATE: Final = "cancel"  # the approved correction; its original_event choices are keyed by template id
PLACEHOLDER: Final = re.compile(r"\{([a-z][a-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Approval:
    by: str
    at: str
    sha256: str
    gazetteer_sha256: str | None = None  # the gazetteer names it covered, to say which part went stale


@dataclass(frozen=True)
class Template:
    id: str
    path: Path
    version: int
    title: Mapping[str, str]
    kinds: tuple[str, ...]
    expires_hours: float
    two_person: bool
    cap: Mapping[str, str]  # category, urgency, severity, certainty, responseType
    event: Mapping[str, str]  # language -> CAP <event>
    variables: tuple[Variable, ...]
    text: Mapping[str, Mapping[str, str]]  # language -> form -> text
    approval: Approval | None
    content_hash: str  # what an approval binds: the file's content and ``words``
    words: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # gazetteer code -> type, ar, en
    words_hash: str = ""
    instruction: Mapping[str, str] | None = None  # language -> CAP <instruction> ([cap] instruction)
    expires_from: str | None = None  # the datetime variable the alert's expiry follows ([cap] expires_from)
    verify_line: bool = False  # its short and long texts end with "تحقق: / Verify: {public_url}/v/CODE"

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    @property
    def approved(self) -> bool:
        return self.approval is not None and self.approval.sha256 == self.content_hash

    def staleness(self) -> str | None:
        """Why the approval does not hold (missing, or which part changed); None when it does."""
        if self.approval is None:
            return "missing"
        if self.approved:
            return None
        if self.approval.gazetteer_sha256 and self.approval.gazetteer_sha256 != self.words_hash:
            kinds = sorted({f"{v.places or 'place'} names" for v in self.variables if v.type == "place"})
            return (f"stale: the gazetteer's {' and '.join(kinds) or 'names'} it can render changed since it "
                    "was approved")
        return "stale: the content changed since it was approved"


def forms_of(template: Template) -> tuple[str, ...]:
    """The forms ``template`` has: the three every template has, then the optional ones it writes."""
    return FORMS + tuple(form for form in OPTIONAL_FORMS if form in template.text["ar"])


def template_detail(t: Template, examples: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """The document of ``broadcaster templates show ID --json`` and ``GET /api/templates/{id}``.

    ``examples`` are the examples as they would be used now (relative times made
    absolute, :func:`broadcaster.templates.variables.example_inputs`); each
    variable's ``example_rule`` keeps what the template says. ``gazetteer`` lists
    the names its place variables can render: they are part of what ``sha256`` covers.
    """
    used = examples or {}
    return {
        "id": t.id,
        "version": t.version,
        "title": dict(t.title),
        "cap": {**t.cap, "event": dict(t.event),
                **({"instruction": dict(t.instruction)} if t.instruction else {}),
                **({"expires_from": t.expires_from} if t.expires_from else {})},
        "kinds": list(t.kinds),
        "expires_hours": t.expires_hours,
        "two_person": t.two_person,
        "verify_line": t.verify_line,
        "approved": t.approved,
        "approval": None if t.approval is None else {"by": t.approval.by, "at": t.approval.at,
                                                      "sha256": t.approval.sha256},
        "sha256": t.content_hash,
        "variables": [
            {"name": v.name, "type": v.type, "max_length": v.max_length, "required": v.required,
             "examples": dict(used.get(v.name, v.examples)),
             **({"example_rule": v.examples["en"]} if v.name in used and used[v.name] != v.examples else {}),
             **({"choices": {k: dict(lbl) for k, lbl in v.choices.items()}} if v.choices else {}),
             **({"places": v.places} if v.places else {}),
             **({"time": {"when": v.time.when, "within_hours": v.time.within_hours, "after": v.time.after}}
                if v.time else {}),
             **({"allow": list(v.allow)} if v.allow else {}),
             **({"hosts": list(v.domains)} if v.domains else {}),
             **({"label": dict(v.label)} if v.label else {})}
            for v in t.variables
        ],
        "text": {lang: dict(forms) for lang, forms in t.text.items()},
        "gazetteer": {code: dict(names) for code, names in t.words.items()},
    }


def content_hash(raw: Mapping[str, Any], words: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """sha256 of everything but ``[approval]`` and of the gazetteer ``words`` it renders, canonically serialised."""
    body = {k: v for k, v in raw.items() if k != "approval"}
    return hashlib.sha256(orjson.dumps({"template": body, "gazetteer": words or {}},
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()


def words_hash(words: Mapping[str, Mapping[str, str]]) -> str:
    return hashlib.sha256(orjson.dumps(words, option=orjson.OPT_SORT_KEYS)).hexdigest()


def renderable_words(variables: Collection[Variable], gazetteer: Gazetteer) -> dict[str, dict[str, str]]:
    """The gazetteer entries the ``place`` variables can render: code -> type and names."""
    words: dict[str, dict[str, str]] = {}
    for variable in variables:
        if variable.type == "place":
            for place in gazetteer.of_type(variable.places):
                words[place.code] = {"type": place.type, **place.names}
    return words


def read_toml(path: Path, text: str | None = None) -> dict[str, Any]:
    """Parse one TOML file (or ``text``, as read from it); a syntax error names the file and line."""
    try:
        return tomllib.loads(read_text(path, "template file") if text is None else text)
    except FileProblem as exc:
        raise TemplateError(str(exc), where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise TemplateError(f"TOML syntax error: {exc}", where=where) from None


def parse_template(path: Path, kinds: Collection[str] | None, gazetteer: Gazetteer, *,
                   source: str | None = None) -> Template:
    """Build a Template from its file (or from ``source``, its text read once). Structural errors raise
    TemplateError naming file and field.

    ``kinds`` are the channel kinds there are (the channel registry's, which this
    layer cannot import); None leaves the names of a template's kinds unchecked.
    ``gazetteer`` gives the names its place variables render, which its hash covers.
    """
    raw = read_toml(path, source)
    where = str(path)

    def need(table: Mapping[str, Any], key: str, kind: type, ctx: str) -> Any:
        value = table.get(key)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise TemplateError(f"{ctx}{key!r}: missing or not a {kind.__name__}", where=where)
        return value

    def bilingual(value: Any, ctx: str) -> dict[str, str]:
        if not isinstance(value, dict) or any(not isinstance(value.get(lang), str) for lang in LANGUAGES):
            raise TemplateError(f"{ctx}: needs {{ar = ..., en = ...}}", where=where)
        return {lang: value[lang] for lang in LANGUAGES}

    known = {"version", "title", "kinds", "expires_hours", "two_person", "cap", "variables", "text", "approval",
             "verify_line"}
    unknown = set(raw) - known
    if unknown:
        raise TemplateError(f"unknown key(s): {', '.join(sorted(unknown))}", where=where)
    version = need(raw, "version", int, "key ")
    title = bilingual(raw.get("title"), "key 'title'")
    targets = tuple(need(raw, "kinds", list, "key "))
    for kind in targets:
        if kinds is not None and kind not in kinds:
            raise TemplateError(f"key 'kinds': unknown channel kind {kind!r} (kinds: {', '.join(kinds)})",
                                where=where)
    expires_hours = raw.get("expires_hours", 6)
    if not isinstance(expires_hours, int | float) or isinstance(expires_hours, bool) or not 0 < expires_hours <= 168:
        raise TemplateError("key 'expires_hours': must be a number of hours from 0 to 168", where=where)
    two_person = raw.get("two_person", False)
    if not isinstance(two_person, bool):
        raise TemplateError("key 'two_person': must be true or false", where=where)
    verify_line = raw.get("verify_line", False)
    if not isinstance(verify_line, bool):
        raise TemplateError("key 'verify_line': must be true or false", where=where)

    cap_raw = need(raw, "cap", dict, "table ")
    cap: dict[str, str] = {}
    for key, allowed in CAP_VALUES.items():
        value = cap_raw.get(key)
        if value not in allowed:
            raise TemplateError(f"[cap] {key}: {value!r} is not a CAP 1.2 value ({', '.join(allowed)})", where=where)
        cap[key] = value
    event = bilingual(cap_raw.get("event"), "[cap] event")
    extra_cap = set(cap_raw) - set(CAP_VALUES) - CAP_EXTRA
    if extra_cap:
        raise TemplateError(f"[cap]: unknown key(s) {', '.join(sorted(extra_cap))}", where=where)
    instruction = bilingual(cap_raw["instruction"], "[cap] instruction") if "instruction" in cap_raw else None
    if instruction is not None and not all(text.strip() for text in instruction.values()):
        raise TemplateError("[cap] instruction: empty text", where=where)

    variables: list[Variable] = []
    for index, table in enumerate(raw.get("variables", []), start=1):
        variable = parse_variable(table, index, where)
        if any(v.name == variable.name for v in variables):
            raise TemplateError(f"variable {variable.name!r}: declared twice", where=where)
        variables.append(variable)
    check_order(variables, where)
    expires_from = cap_raw.get("expires_from")
    if expires_from is not None:
        end = next((v for v in variables if v.name == expires_from), None)
        if end is None or end.type != "datetime":
            raise TemplateError(f"[cap] expires_from: {expires_from!r} is not a datetime variable of this template "
                                "(the end time the alert's expiry follows)", where=where)

    text_raw = need(raw, "text", dict, "table ")
    text: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        forms = text_raw.get(lang)
        if not isinstance(forms, dict):
            raise TemplateError(f"[text.{lang}]: missing", where=where)
        text[lang] = {}
        for form in FORMS:
            value = forms.get(form)
            if not isinstance(value, str) or not value.strip():
                raise TemplateError(f"[text.{lang}] {form}: missing or empty", where=where)
            text[lang][form] = value.strip()
    for form, kind in OPTIONAL_FORMS.items():
        given = [lang for lang in LANGUAGES if form in text_raw[lang]]
        if kind in targets and len(given) < len(LANGUAGES):
            missing = next(lang for lang in LANGUAGES if lang not in given)
            raise TemplateError(f"[text.{missing}] {form}: missing; key 'kinds' names {kind!r}, which sends this "
                                "form", where=where)
        if given and len(given) < len(LANGUAGES):
            raise TemplateError(f"[text.{given[0]}] {form}: given in one language only; write it in both",
                                where=where)
        for lang in given:
            value = text_raw[lang][form]
            if not isinstance(value, str) or not value.strip():
                raise TemplateError(f"[text.{lang}] {form}: missing or empty", where=where)
            text[lang][form] = value.strip()
    for lang in LANGUAGES:
        extra = set(text_raw[lang]) - set(FORMS) - set(OPTIONAL_FORMS)
        if extra:
            raise TemplateError(f"[text.{lang}]: unknown form(s) {', '.join(sorted(extra))}", where=where)

    approval = None
    approval_raw = raw.get("approval")
    if isinstance(approval_raw, dict):
        covered = approval_raw.get("gazetteer_sha256")
        approval = Approval(
            by=str(approval_raw.get("by", "")),
            at=str(approval_raw.get("at", "")),
            sha256=str(approval_raw.get("sha256", "")),
            gazetteer_sha256=covered if isinstance(covered, str) else None,
        )
    words = renderable_words(variables, gazetteer)

    return Template(
        id=path.stem,
        path=path,
        version=version,
        title=title,
        kinds=targets,
        expires_hours=float(expires_hours),
        two_person=two_person,
        cap=cap,
        event=event,
        variables=tuple(variables),
        text=text,
        approval=approval,
        content_hash=content_hash(raw, words),
        words=words,
        words_hash=words_hash(words),
        instruction={lang: text.strip() for lang, text in instruction.items()} if instruction else None,
        expires_from=expires_from,
        verify_line=verify_line,
    )


class Catalogue:
    """The templates folder: templates plus the gazetteer."""

    def __init__(self, folder: Path, kinds: Collection[str]) -> None:
        self.folder = folder
        self.kinds = tuple(kinds)  # the channel kinds a template may target (channels.registry.KINDS)
        if not folder.is_dir():
            raise TemplateError("templates folder not found", where=str(folder))
        self.gazetteer: Gazetteer = load_gazetteer(folder / GAZETTEER_FILE)

    def ids(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.toml") if p.name != GAZETTEER_FILE)

    def path(self, template_id: str) -> Path:
        return self.folder / f"{template_id}.toml"

    def path_of(self, template_id: str) -> Path:
        """The file of a template that exists; a TemplateError listing the known ids otherwise."""
        if not NAME.match(template_id) or template_id not in self.ids():
            known = ", ".join(self.ids())
            raise TemplateError(f"no template {template_id!r} (known: {known})", where=str(self.folder))
        return self.path(template_id)

    def get(self, template_id: str) -> Template:
        return parse_template(self.path_of(template_id), self.kinds, self.gazetteer)

    def approved(self, template_id: str) -> Template:
        """The template, refusing one whose approval is missing or stale."""
        template = self.get(template_id)
        state = template.staleness()
        if state is not None:
            raise TemplateError(
                f"approval {state}; review it (`broadcaster templates show {template_id}`) and run "
                f"`broadcaster templates approve {template_id}` (as an approver)",
                where=str(template.path),
            )
        return template


