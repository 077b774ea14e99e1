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


# Follow-up markers: an update or a reminder says so first, in both languages, on every channel. They sit after
# an exercise marker ("[تمرين] تحديث: …") and are counted in every length like it (templates check's worst case).
UPDATE_MARKER: Final = {"ar": "تحديث:", "en": "Update:"}
# "التذكير الأول" ... "التذكير العشرون" (تذكير is masculine: the masculine ordinal), then a number.
_AR_ORDINALS: Final = ("الأول", "الثاني", "الثالث", "الرابع", "الخامس", "السادس", "السابع", "الثامن", "التاسع",
                       "العاشر", "الحادي عشر", "الثاني عشر", "الثالث عشر", "الرابع عشر", "الخامس عشر",
                       "السادس عشر", "السابع عشر", "الثامن عشر", "التاسع عشر", "العشرون")
_EN_ORDINALS: Final = ("First", "Second", "Third", "Fourth", "Fifth", "Sixth", "Seventh", "Eighth", "Ninth", "Tenth",
                       "Eleventh", "Twelfth", "Thirteenth", "Fourteenth", "Fifteenth", "Sixteenth", "Seventeenth",
                       "Eighteenth", "Nineteenth", "Twentieth")
REMINDERS_WORST: Final = 99_999  # the most reminders templates check allows for (a minute apart: 69 days)


def reminder_marker(n: int) -> dict[str, str]:
    """The ``n``-th reminder's marker (a repeat of an alert, counted from 1): "التذكير الثاني:" / "Second reminder:";
    past the twentieth, "التذكير رقم 21:" / "Reminder no. 21:" (Western digits)."""
    if n < 1:
        raise ValueError(f"a reminder is counted from 1, not {n}")
    if n <= len(_AR_ORDINALS):
        return {"ar": f"التذكير {_AR_ORDINALS[n - 1]}:", "en": f"{_EN_ORDINALS[n - 1]} reminder:"}
    return {"ar": f"التذكير رقم {n}:", "en": f"Reminder no. {n}:"}


def follow_up_markers() -> list[dict[str, str]]:
    """Every marker a follow-up can carry that could be the longest: what ``templates check`` measures."""
    return [UPDATE_MARKER, *(reminder_marker(n) for n in range(1, len(_AR_ORDINALS) + 1)),
            reminder_marker(REMINDERS_WORST)]


def mark(forms: Forms, marker: Mapping[str, str] | None) -> Forms:
    """Every form with ``marker`` first, after an exercise marker if there is one: "[EXERCISE] Update: …"."""
    if not marker:
        return forms
    marked: dict[str, dict[str, str]] = {}
    for lang, by_form in forms.items():
        exercise = EXERCISE_MARKER[lang] + " "
        marked[lang] = {}
        for form, text in by_form.items():
            head = exercise if text.startswith(exercise) else ""
            marked[lang][form] = f"{head}{marker[lang]} {text.removeprefix(head)}"
    return marked
