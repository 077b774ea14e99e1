"""Check request bodies field by field; a bad one is a 400 naming the field, before anything else runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from broadcaster.service.http import ApiError
from broadcaster.states import CancelReason, Mode
from broadcaster.templates.catalogue import LANGUAGES, Template
from broadcaster.templates.variables import example_inputs

FIRE_FIELDS: Final = frozenset({"template", "variables", "use_examples", "channels", "areas", "mode", "confirm"})
UPDATE_FIELDS: Final = frozenset({"variables", "mode", "confirm"})
CANCEL_FIELDS: Final = frozenset({"mode", "confirm", "reason"})
ALL_CLEAR_FIELDS: Final = frozenset({"variables", "mode", "confirm"})
FOLLOW_UP_PREVIEW_FIELDS: Final = frozenset({"action", "variables", "reason", "mode"})
FOLLOW_UP_ACTIONS: Final = ("update", "cancel", "all_clear")
APPROVE_FIELDS: Final = frozenset({"sha256"})
CONFIRM_FIELDS: Final = frozenset({"confirm"})

Inputs = dict[str, dict[str, str]]


def bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid", f"{field}: {message}", field=field)


@dataclass(frozen=True)
class FireBody:
    template: str
    variables: Inputs
    use_examples: bool
    selection: str
    areas: tuple[str, ...]
    mode: Mode
    confirm: str | None

    def inputs(self, template: Template, now: float, tz: ZoneInfo) -> Inputs:
        """The template's examples (relative times made absolute from ``now``) when asked for, overlaid with
        the values given."""
        inputs = example_inputs(template, now, tz) if self.use_examples else {}
        for name, values in self.variables.items():
            inputs.setdefault(name, {}).update(values)
        return inputs


def known_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad(unknown[0], f"unknown field (expected some of {', '.join(sorted(allowed))})")


def parse_fire(body: Mapping[str, Any], *, default_mode: str | None = None) -> FireBody:
    known_fields(body, FIRE_FIELDS)
    template = body.get("template")
    if not isinstance(template, str) or not template:
        raise bad("template", "a template id (string) is required")
    use_examples = body.get("use_examples", False)
    if not isinstance(use_examples, bool):
        raise bad("use_examples", "must be true or false")
    return FireBody(
        template=template,
        variables=parse_variables(body.get("variables")),
        use_examples=use_examples,
        selection=parse_channels(body.get("channels")),
        areas=parse_areas(body.get("areas")),
        mode=parse_mode(body, default=default_mode),
        confirm=parse_confirm(body),
    )


def parse_variables(value: Any) -> Inputs:
    """``{"road": "E11", "detour": {"ar": "...", "en": "..."}}``: a plain value is both languages."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad("variables", "must be an object of name: value")
    parsed: Inputs = {}
    for name, raw in value.items():
        where = f"variables.{name}"
        if isinstance(raw, bool) or raw is None:
            raise bad(where, "must be a string, a number or {\"ar\": ..., \"en\": ...}")
        if isinstance(raw, str | int | float):
            parsed[name] = dict.fromkeys(LANGUAGES, str(raw))
            continue
        if not isinstance(raw, dict) or not raw:
            raise bad(where, "must be a string, a number or {\"ar\": ..., \"en\": ...}")
        per_language: dict[str, str] = {}
        for lang, text in raw.items():
            if lang not in LANGUAGES:
                raise bad(f"{where}.{lang}", "language must be ar or en")
            if not isinstance(text, str | int | float) or isinstance(text, bool):
                raise bad(f"{where}.{lang}", "must be a string or a number")
            per_language[lang] = str(text)
        parsed[name] = per_language
    return parsed


def parse_channels(value: Any) -> str:
    """A selection as on the command line (``all``, ``id,id``, ``kind:sms``, ``area:CODE``) or a list of ids."""
    if value is None:
        return "all"
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, list) and value and all(isinstance(v, str) and v and "," not in v for v in value):
        return ",".join(value)
    raise bad("channels", "must be a selection string (all | id,id | kind:KIND | area:CODE) or a list of ids")


def parse_areas(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad("areas", "must be a list of gazetteer area codes")
    return tuple(value)


def parse_mode(body: Mapping[str, Any], *, default: str | None = None) -> Mode:
    mode = body.get("mode", default)
    if not isinstance(mode, str) or mode not in set(Mode):
        raise bad("mode", f"must be one of {', '.join(Mode)}")
    return Mode(mode)


def parse_reason(body: Mapping[str, Any]) -> CancelReason:
    """A cancel's ``reason``: ``error`` (the default: sent in error) or ``called_off``."""
    reason = body.get("reason", CancelReason.ERROR)
    if not isinstance(reason, str) or reason not in set(CancelReason):
        raise bad("reason", f"must be one of {', '.join(CancelReason)} (sent in error, or called off)")
    return CancelReason(reason)


def parse_confirm(body: Mapping[str, Any]) -> str | None:
    confirm = body.get("confirm")
    if confirm is not None and not isinstance(confirm, str):
        raise bad("confirm", "must be the template id, typed")
    return confirm


def require_typed_confirmation(mode: str, confirm: str | None, template_id: str) -> None:
    """A live send needs the officer to type the template id, as on the command line."""
    if mode == "live" and (confirm or "").strip() != template_id:
        raise bad("confirm", f"a live alert needs \"confirm\": \"{template_id}\" (the template id, typed)")
