"""Render a template with checked values, per language; kind-neutral.

Plain text forms (headline, short, long) are rendered once per language. Each
channel kind then shapes and measures them in its own module
(``broadcaster.channels.<kind>.render``) into :class:`Rendered` messages.

Latin words embedded in Arabic are wrapped in a first-strong isolate
(U+2068 … U+2069) so that "E11" or "Al Ain" keep their order inside the
right-to-left sentence; the isolates are counted in every length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from broadcaster.templates.catalogue import FORMS, LANGUAGES, PLACEHOLDER, Template

FSI: Final = "\u2068"
PDI: Final = "\u2069"
EXERCISE_MARKER: Final = {"ar": "[تمرين]", "en": "[EXERCISE]"}
_LATIN: Final = re.compile(r"[A-Za-z]")

Forms = Mapping[str, Mapping[str, str]]  # language -> form -> text


@dataclass(frozen=True, slots=True)
class Rendered:
    """One message as a channel would send it, measured in that channel's own way.

    ``length`` is in ``unit`` (the kind's measure) and ``limit`` is the most the
    channel takes; nothing is ever cut to fit.
    """

    language: str  # "ar", "en" or "ar+en"
    text: str
    length: int
    limit: int
    unit: str
    segments: int | None = None  # SMS only
    encoding: str | None = None  # SMS only

    @property
    def fits(self) -> bool:
        return self.length <= self.limit


def isolate(value: str, language: str) -> str:
    """Wrap a value holding Latin letters in an isolate when it sits in Arabic text."""
    if language == "ar" and value and _LATIN.search(value):
        return f"{FSI}{value}{PDI}"
    return value


def fill(text: str, display: Mapping[str, Mapping[str, str]], language: str) -> str:
    """``text`` with each ``{variable}`` replaced by its display in ``language``, isolated in Arabic."""

    def substitute(match: re.Match[str]) -> str:
        return isolate(display[match.group(1)][language], language)

    return PLACEHOLDER.sub(substitute, text)


def render_forms(template: Template, display: Mapping[str, Mapping[str, str]], *, exercise: bool) -> Forms:
    """Headline, short and long text per language, variables filled in."""
    forms: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        forms[lang] = {}
        for form in FORMS:
            text = fill(template.text[lang][form], display, lang)
            if exercise:
                text = f"{EXERCISE_MARKER[lang]} {text}"
            forms[lang][form] = text
    return forms
