"""Render a template with checked values, per language; kind-neutral.

Plain text forms (headline, short, long) are rendered once per language. Each
channel kind then shapes and measures them in its own module
(``broadcaster.channels.<kind>.render``) into :class:`Rendered` messages.

Every value is isolated from the sentence around it, in the direction of the
text it sits in: in the Arabic text a right-to-left isolate (RLI U+2067 … PDI
U+2069), in the English text a left-to-right one (LRI U+2066 … PDI). So
"E311 ثم المخرج 42" in an Arabic sentence reads "E311" first (a first-strong
isolate, FSI, would have turned it left-to-right because it starts with a Latin
letter, and an Arabic reader would read "E311" last), and a value never pulls the
punctuation around it into its own direction. The isolates are counted in every
length; the SMS kind alone drops them from a text that holds no right-to-left
character at all, where they cannot change the display (see :func:`inert_isolates_dropped`)
and would only turn a GSM-7 message into UCS-2.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from broadcaster.templates.catalogue import LANGUAGES, PLACEHOLDER, Template, forms_of

LRI: Final = "\u2066"  # left-to-right isolate: a value in the English text
RLI: Final = "\u2067"  # right-to-left isolate: a value in the Arabic text
FSI: Final = "\u2068"  # first-strong isolate: not used for values any more (it follows the value's first letter)
PDI: Final = "\u2069"  # pop directional isolate: closes each of the three
ISOLATES: Final = {"ar": RLI, "en": LRI}
INITIATORS: Final = frozenset((LRI, RLI, FSI))
EXERCISE_MARKER: Final = {"ar": "[تمرين]", "en": "[EXERCISE]"}
# Characters of a right-to-left or Arabic-number bidi class, and the controls that open RTL.
_RTL_CLASSES: Final = frozenset(("R", "AL", "AN", "RLE", "RLO", "RLI", "FSI"))

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
    """``value`` isolated in the direction of the ``language`` text it sits in (RLI in Arabic, LRI in English).

    An empty value stays empty: an optional variable left out adds nothing.
    """
    if not value:
        return value
    return f"{ISOLATES[language]}{value}{PDI}"


def inert_isolates_dropped(text: str) -> str:
    """``text`` without its isolates when it holds no right-to-left character; otherwise ``text`` unchanged.

    In a text with no R, AL or AN character every bidi level stays even and nothing is
    reordered (UAX #9), so an isolate there changes nothing on screen; an English SMS
    without them stays GSM-7 (one septet a character) instead of UCS-2.
    """
    if any(unicodedata.bidirectional(char) in _RTL_CLASSES for char in text):
        return text
    return text.replace(LRI, "").replace(PDI, "")


def fill(text: str, display: Mapping[str, Mapping[str, str]], language: str) -> str:
    """``text`` with each ``{variable}`` replaced by its display in ``language``, isolated (see :func:`isolate`)."""

    def substitute(match: re.Match[str]) -> str:
        return isolate(display[match.group(1)][language], language)

    return PLACEHOLDER.sub(substitute, text)


def render_forms(template: Template, display: Mapping[str, Mapping[str, str]], *, exercise: bool) -> Forms:
    """Headline, short and long text per language (and the optional forms the template has), variables filled in."""
    forms: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        forms[lang] = {}
        for form in forms_of(template):
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


_MARKERS: Final = re.compile(
    r"^(?:\[تمرين\] |\[EXERCISE\] )?(?:(?:تحديث|Update|التذكير (?:"
    + "|".join(sorted(_AR_ORDINALS, key=len, reverse=True)) + r"|رقم \d+)|(?:"
    + "|".join(_EN_ORDINALS) + r") reminder|Reminder no\. \d+): )?")


def markers_of(text: str) -> str:
    """The markers ``text`` starts with, as written: an exercise marker, then an update or reminder marker."""
    found = _MARKERS.match(text)
    return found.group(0) if found else ""


def shown_once(headline: str, body: str) -> str:
    """``body`` without the markers ``headline`` already shows, for a kind that puts the two together: a reader
    sees "[EXERCISE] Update:" once, on the headline, not again at the start of the text."""
    prefix = markers_of(headline)
    return body.removeprefix(prefix) if prefix else body


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
