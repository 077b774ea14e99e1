"""What an alert card says, per language: composed from the approved, rendered texts and the alert's facts.

A card never says anything the alert does not: its headline is the approved
headline form (already filled and checked), its facts are the alert's areas by
their gazetteer names and its issue and expiry times, formatted exactly as the
templates format a moment. Nothing here draws; :mod:`broadcaster.cards.render` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from broadcaster.config import Config
from broadcaster.states import Mode
from broadcaster.templates.catalogue import LANGUAGES, Template
from broadcaster.templates.gazetteer import Gazetteer
from broadcaster.templates.render import EXERCISE_MARKER, Forms, isolate
from broadcaster.templates.variables import format_moment

KICKER: Final = {
    "ar": {"Alert": "تنبيه", "Update": "تحديث", "Cancel": "إلغاء"},
    "en": {"Alert": "ALERT", "Update": "UPDATE", "Cancel": "CANCELLED"},
}
LABELS: Final = {
    "ar": {"where": "المنطقة", "issued": "صدر", "until": "ساري حتى"},
    "en": {"where": "Where", "issued": "Issued", "until": "Valid until"},
}
LIST_SEPARATOR: Final = {"ar": "، ", "en": ", "}
MORE: Final = {"ar": "و{n} غيرها", "en": "and {n} more"}


@dataclass(frozen=True, slots=True)
class CardContent:
    """Everything one card shows, in one language, as final text.

    ``facts`` are ``(label, value)`` rows, where first; ``places`` are the names
    the first row lists, so that a list too long for the card can name its first
    few and count the rest (:func:`place_list`); ``exercise`` draws the marker
    across the card; ``severity`` is the template's CAP severity (the header's colour).
    """

    language: str
    kicker: str
    headline: str
    facts: tuple[tuple[str, str], ...]
    authority: str
    alert_id: str
    exercise: bool
    severity: str
    places: tuple[str, ...] = ()

    @property
    def marker(self) -> str:
        """The exercise marker drawn across the card, this language's first."""
        other = "en" if self.language == "ar" else "ar"
        return f"{EXERCISE_MARKER[self.language]}  {EXERCISE_MARKER[other]}"


def authority_name(config: Config, language: str) -> str:
    """The issuing authority as the card names it: ``[broadcaster] authority``, else the CAP sender."""
    if config.authority is not None:
        return config.authority[language]
    return config.sender


def card_contents(
    config: Config,
    template: Template,
    gazetteer: Gazetteer,
    *,
    alert_id: str,
    mode: Mode,
    msg_type: str,
    sent_at: float,
    expires_at: float,
    areas: Sequence[str],
    forms: Forms,
) -> dict[str, CardContent]:
    """One :class:`CardContent` per language (Arabic first) for an alert with these fields."""
    tz = config.timezone
    exercise = mode == Mode.EXERCISE
    contents: dict[str, CardContent] = {}
    for lang in LANGUAGES:
        labels = LABELS[lang]
        names = [isolate(_area_name(gazetteer, code, lang), lang) for code in areas]
        facts = (
            (labels["where"], place_list(lang, names, len(names))),
            (labels["issued"], format_moment(datetime.fromtimestamp(sent_at, tz), "datetime", lang, tz)),
            (labels["until"], format_moment(datetime.fromtimestamp(expires_at, tz), "datetime", lang, tz)),
        )
        kicker = f"{KICKER[lang].get(msg_type, KICKER[lang]['Alert'])} · {template.title[lang]}"
        contents[lang] = CardContent(
            language=lang, kicker=kicker, headline=_headline(forms, lang, exercise), facts=facts,
            authority=authority_name(config, lang), alert_id=alert_id, exercise=exercise,
            severity=str(template.cap.get("severity", "Unknown")), places=tuple(names),
        )
    return contents


def place_list(language: str, names: Sequence[str], shown: int) -> str:
    """The first ``shown`` of ``names``, then how many more there are: ``Hatta, Al Barsha and 5 more``."""
    if not names:
        return "—"
    listed = LIST_SEPARATOR[language].join(names[:shown])
    rest = len(names) - shown
    return f"{listed}{LIST_SEPARATOR[language]}{MORE[language].format(n=rest)}" if rest > 0 else listed


def _area_name(gazetteer: Gazetteer, code: str, lang: str) -> str:
    place = gazetteer.get(code)
    return place.name(lang) if place is not None else code


def _headline(forms: Forms, lang: str, exercise: bool) -> str:
    """The approved headline; an exercise marker on it is dropped, since the card carries its own across it."""
    headline = forms[lang]["headline"]
    return headline.removeprefix(EXERCISE_MARKER[lang] + " ") if exercise else headline


def sample_forms(headline: Mapping[str, str]) -> Forms:
    """Forms holding only ``headline`` per language (what a card reads), for checks and tests."""
    return {lang: {"headline": headline[lang], "short": headline[lang], "long": headline[lang]}
            for lang in LANGUAGES}
