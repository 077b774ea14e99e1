"""Render a template with checked values, per channel kind and language.

Plain text forms are rendered once per language; each channel kind then shapes
them: SMS and X take the short form, Telegram the headline and long form as
escaped HTML (both languages in one message with ``layout = "combined"``,
Arabic first), webhooks a JSON body with both languages.

Latin words embedded in Arabic are wrapped in a first-strong isolate
(U+2068 … U+2069) so that "E11" or "Al Ain" keep their order inside the
right-to-left sentence; the isolates are counted in every length.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from broadcaster.templates.catalogue import FORMS, LANGUAGES, PLACEHOLDER, Template
from broadcaster.text import lengths

FSI: Final = "\u2068"
PDI: Final = "\u2069"
EXERCISE_MARKER: Final = {"ar": "[تمرين]", "en": "[EXERCISE]"}
_LATIN: Final = re.compile(r"[A-Za-z]")
TELEGRAM_SEPARATOR: Final = "\n\n—————\n\n"

Forms = Mapping[str, Mapping[str, str]]  # language -> form -> text


@dataclass(frozen=True, slots=True)
class Rendered:
    """One message as a channel would send it, measured in that channel's own way."""

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


def telegram_html(forms: Forms, language: str) -> str:
    """Bold headline, then the long form; an exercise marker is shown once, on the headline."""
    headline, long = forms[language]["headline"], forms[language]["long"]
    marker = EXERCISE_MARKER[language] + " "
    if headline.startswith(marker) and long.startswith(marker):
        long = long.removeprefix(marker)
    return f"<b>{html.escape(headline, quote=False)}</b>\n\n{html.escape(long, quote=False)}"


def shape(kind: str, forms: Forms, languages: tuple[str, ...], *, layout: str = "combined") -> list[tuple[str, str]]:
    """``(language, text)`` pairs a channel of ``kind`` sends, Arabic first."""
    if kind in ("sms", "x"):
        return [(lang, forms[lang]["short"]) for lang in languages]
    if kind == "telegram":
        if layout == "combined" and len(languages) > 1:
            return [("+".join(languages), TELEGRAM_SEPARATOR.join(telegram_html(forms, lang) for lang in languages))]
        return [(lang, telegram_html(forms, lang)) for lang in languages]
    if kind == "webhook":
        # The body is JSON built by the engine around these texts; measured as the long forms.
        return [("+".join(languages), "\n\n".join(forms[lang]["long"] for lang in languages))]
    raise ValueError(f"unknown channel kind {kind!r}")


def measure(kind: str, language: str, text: str, *, max_segments: int = 4) -> Rendered:
    """Measure ``text`` the way the provider behind ``kind`` counts it."""
    if kind == "sms":
        count = lengths.sms_count(text)
        return Rendered(language, text, count.segments, max_segments, "segments", count.segments, count.encoding)
    if kind == "x":
        return Rendered(language, text, lengths.x_weighted_length(text), lengths.X_LIMIT, "weighted chars")
    if kind == "telegram":
        return Rendered(language, text, lengths.telegram_length(text), lengths.TELEGRAM_LIMIT, "UTF-16 units")
    if kind == "webhook":
        return Rendered(language, text, len(text.encode("utf-8")), WEBHOOK_LIMIT_BYTES, "bytes")
    raise ValueError(f"unknown channel kind {kind!r}")


WEBHOOK_LIMIT_BYTES: Final = 64 * 1024


def render_channel(
    kind: str, forms: Forms, languages: tuple[str, ...], *, layout: str = "combined", max_segments: int = 4
) -> list[Rendered]:
    """Every message one channel would send, measured."""
    return [measure(kind, lang, text, max_segments=max_segments) for lang, text in shape(kind, forms, languages,
                                                                                        layout=layout)]
