"""Load templates: one TOML file per template, id = file stem.

A template's approval is bound to the sha256 of its content: every table except
``[approval]``, serialised canonically. Comments and layout do not count; any
change to a text, a variable or a CAP field voids the approval.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeGuard

import orjson

from broadcaster.errors import TemplateError
from broadcaster.templates.gazetteer import Gazetteer, load_gazetteer
from broadcaster.text.files import FileProblem, read_text

LANGUAGES: Final = ("ar", "en")
FORMS: Final = ("headline", "short", "long")
VARIABLE_TYPES: Final = ("text", "place", "datetime", "number", "enum", "url")
CAP_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "category": ("Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
                 "CBRNE", "Other"),
    "urgency": ("Immediate", "Expected", "Future", "Past", "Unknown"),
    "severity": ("Extreme", "Severe", "Moderate", "Minor", "Unknown"),
    "certainty": ("Observed", "Likely", "Possible", "Unlikely", "Unknown"),
    "responseType": ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"),
}
GAZETTEER_FILE: Final = "gazetteer.toml"
CANCEL_TEMPLATE: Final = "cancel"  # the approved correction; its original_event choices are keyed by template id
PLACEHOLDER: Final = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


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
    domains: tuple[str, ...] = ()  # url: allowed hosts


@dataclass(frozen=True, slots=True)
class Approval:
    by: str
    at: str
    sha256: str


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
    content_hash: str

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    @property
    def approved(self) -> bool:
        return self.approval is not None and self.approval.sha256 == self.content_hash


def template_detail(t: Template) -> dict[str, Any]:
    """The document of ``broadcaster templates show ID --json`` and ``GET /api/templates/{id}``."""
    return {
        "id": t.id,
        "version": t.version,
        "title": dict(t.title),
        "cap": {**t.cap, "event": dict(t.event)},
        "kinds": list(t.kinds),
        "expires_hours": t.expires_hours,
        "two_person": t.two_person,
        "approved": t.approved,
        "approval": None if t.approval is None else {"by": t.approval.by, "at": t.approval.at,
                                                      "sha256": t.approval.sha256},
        "sha256": t.content_hash,
        "variables": [
            {"name": v.name, "type": v.type, "max_length": v.max_length, "required": v.required,
             "examples": dict(v.examples),
             **({"choices": {k: dict(lbl) for k, lbl in v.choices.items()}} if v.choices else {}),
             **({"places": v.places} if v.places else {})}
            for v in t.variables
        ],
        "text": {lang: dict(forms) for lang, forms in t.text.items()},
    }


def content_hash(raw: Mapping[str, Any]) -> str:
    """sha256 of everything but ``[approval]``, canonically serialised."""
    body = {k: v for k, v in raw.items() if k != "approval"}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _finite(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file; a syntax error names the file and line."""
    try:
        return tomllib.loads(read_text(path))
    except FileProblem as exc:
        raise TemplateError(str(exc), where=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise TemplateError(f"TOML syntax error: {exc}", where=where) from None


def parse_template(path: Path, kinds: Collection[str] | None) -> Template:
    """Build a Template from its file. Structural errors raise TemplateError naming file and field.

    ``kinds`` are the channel kinds there are (the channel registry's, which this
    layer cannot import); None leaves the names of a template's kinds unchecked.
    """
    raw = read_toml(path)
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

    known = {"version", "title", "kinds", "expires_hours", "two_person", "cap", "variables", "text", "approval"}
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

    cap_raw = need(raw, "cap", dict, "table ")
    cap: dict[str, str] = {}
    for key, allowed in CAP_VALUES.items():
        value = cap_raw.get(key)
        if value not in allowed:
            raise TemplateError(f"[cap] {key}: {value!r} is not a CAP 1.2 value ({', '.join(allowed)})", where=where)
        cap[key] = value
    event = bilingual(cap_raw.get("event"), "[cap] event")
    extra_cap = set(cap_raw) - set(CAP_VALUES) - {"event"}
    if extra_cap:
        raise TemplateError(f"[cap]: unknown key(s) {', '.join(sorted(extra_cap))}", where=where)

    variables: list[Variable] = []
    for index, table in enumerate(raw.get("variables", []), start=1):
        variable = _variable(table, index, where)
        if any(v.name == variable.name for v in variables):
            raise TemplateError(f"variable {variable.name!r}: declared twice", where=where)
        variables.append(variable)

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

    approval = None
    approval_raw = raw.get("approval")
    if isinstance(approval_raw, dict):
        approval = Approval(
            by=str(approval_raw.get("by", "")),
            at=str(approval_raw.get("at", "")),
            sha256=str(approval_raw.get("sha256", "")),
        )

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
        content_hash=content_hash(raw),
    )


def _variable(table: Any, index: int, where: str) -> Variable:
    if not isinstance(table, dict):
        raise TemplateError(f"[[variables]] #{index}: not a table", where=where)
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
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
    domains = table.get("domains", [])
    if vtype == "url" and (not isinstance(domains, list) or not domains):
        raise TemplateError(f"{ctx}: a url variable needs domains = [official hosts]", where=where)
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

    def get(self, template_id: str) -> Template:
        if not _NAME.match(template_id) or template_id not in self.ids():
            known = ", ".join(self.ids())
            raise TemplateError(f"no template {template_id!r} (known: {known})", where=str(self.folder))
        return parse_template(self.path(template_id), self.kinds)

    def approved(self, template_id: str) -> Template:
        """The template, refusing one whose approval is missing or stale."""
        template = self.get(template_id)
        if not template.approved:
            state = "stale: the content changed since it was approved" if template.approval else "missing"
            raise TemplateError(
                f"approval {state}; review it and run `broadcaster templates approve {template_id} --by NAME`",
                where=str(template.path),
            )
        return template


def approve(path: Path, by: str, when: datetime) -> str:
    """Record an approval of the file's current content; returns the new sha256.

    The ``[approval]`` table is rewritten at the end of the file; the rest of
    the file, comments included, is kept byte for byte.
    """
    if not by.strip():
        raise TemplateError("an approval needs the approver's name (--by)", where=str(path))
    digest = content_hash(read_toml(path))
    original = path.read_text(encoding="utf-8")
    # The header may carry a trailing comment ("[approval]  # signed off").
    text = re.split(r"(?m)^\[approval\][ \t]*(?:#.*)?$", original, maxsplit=1)[0].rstrip("\n")
    by_toml = orjson.dumps(by.strip()).decode()
    text += f'\n\n[approval]\nby = {by_toml}\nat = "{when.isoformat(timespec="seconds")}"\nsha256 = "{digest}"\n'
    path.write_text(text, encoding="utf-8")
    # The rewrite must not have changed the approved content (e.g. tables after [approval]);
    # whatever goes wrong, the officer's file is put back as it was.
    try:
        rewritten = parse_template(path, None)  # only the content hash is compared here
    except TemplateError:
        path.write_text(original, encoding="utf-8")
        raise
    if rewritten.content_hash != digest:
        path.write_text(original, encoding="utf-8")
        raise TemplateError("[approval] must be the last table in the file", where=str(path))
    return digest
