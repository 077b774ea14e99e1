"""WhatsApp messages through Twilio: pre-approved templates, one per subscriber who opted in.

Config: ``account_sid_env``, ``auth_token_env``, exactly one of ``from``
(``"whatsapp:+E164"``) or ``messaging_service_sid``, ``recipients`` (the phone
list format: opted-in subscribers only), ``content_sid`` and, on an
``exercise = true`` channel, ``exercise_content_sid``::

    content_sid.road_closure = { ar = "HX…", en = "HX…" }
    exercise_content_sid.road_closure = { ar = "HX…", en = "HX…" }

A business may start a WhatsApp conversation only with a template WhatsApp
approved, so every alert goes out as a Content SID plus its ``ContentVariables``,
never as free text. The template behind a Content SID is the alert template's
long form in that language with each ``{variable}`` written ``{{1}}``, ``{{2}}``, …
in the order the variables first appear (:func:`whatsapp_body` writes it out), and
``ContentVariables`` are the values as the preview shows them (:func:`content_variables`):
a subscriber reads exactly the previewed text. A WhatsApp template's text is fixed,
so the exercise marker cannot be added to it at send time: an exercise fire uses
``exercise_content_sid``, templates whose body starts with ``[تمرين]`` /
``[EXERCISE]``. A template or language without a Content SID is a problem for
``channels check`` and stops a fire before anything is committed.

Shaping: the long form, one message per recipient in their language, measured
against WhatsApp's 1,024 characters for a template and its values. Sending,
status callbacks (Twilio reports ``read`` too), reconciliation and Twilio's
WhatsApp error codes are shared with SMS in :mod:`broadcaster.channels.twilio_api`.
Recipients are stored as ``whatsapp:+E164``, so a phone on an SMS list and on a
WhatsApp list gets one message of each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

import orjson

from broadcaster.channels.base import AlertDocument, OutboundMessage
from broadcaster.channels.twilio_api import TWILIO_KEYS, TwilioChannel, TwilioOptions, twilio_keys
from broadcaster.config import ChannelConfig, KindTable
from broadcaster.errors import ConfigError, DeliveryError, Reason, VariableError
from broadcaster.recipients import check_phone
from broadcaster.templates.catalogue import LANGUAGES, PLACEHOLDER
from broadcaster.templates.render import EXERCISE_MARKER, Forms, Rendered, isolate
from broadcaster.text import lengths

__all__ = ["WHATSAPP_LIMIT", "WhatsAppChannel", "WhatsAppOptions", "content_variables", "whatsapp_body"]

WHATSAPP_LIMIT: Final = 1024  # characters of a template with its values filled in (Twilio error 63021)
PREFIX: Final = "whatsapp:"
_CONTENT_SID: Final = re.compile(r"HX[0-9a-fA-F]{32}")
_TEMPLATE_ID: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_SPACES: Final = re.compile(r" {5,}")
EXERCISE_STATUS: Final = "Exercise"  # the CAP status of an exercise alert (AlertDocument.status)

ContentSids = tuple[tuple[str, str, str], ...]  # (template id, language, Content SID)


@dataclass(frozen=True, kw_only=True)
class WhatsAppOptions(TwilioOptions):
    """A Twilio WhatsApp sender, its subscribers, and the Content SID of each template and language."""

    content_sid: ContentSids
    exercise_content_sid: ContentSids = ()
    address_prefix: ClassVar[str] = PREFIX

    def sid(self, template_id: str, language: str, *, exercise: bool) -> str | None:
        table = self.exercise_content_sid if exercise else self.content_sid
        return next((sid for t, lang, sid in table if t == template_id and lang == language), None)


def whatsapp_body(text: str, language: str, *, exercise: bool = False) -> str:
    """The body to register for a template form ``text``: ``{variable}`` -> ``{{n}}`` in order of first use."""
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return "{{" + str(order.setdefault(match.group(1), len(order) + 1)) + "}}"

    body = PLACEHOLDER.sub(number, text)
    return f"{EXERCISE_MARKER[language]} {body}" if exercise else body


def content_variables(text: str, values: Mapping[str, Mapping[str, str]], language: str) -> dict[str, str]:
    """``{"1": value, "2": value, ...}`` for the template form ``text``, each value as the forms show it."""
    names = list(dict.fromkeys(PLACEHOLDER.findall(text)))
    return {str(n): isolate(values[name][language], language) for n, name in enumerate(names, start=1)}


class WhatsAppChannel(TwilioChannel):
    """One Twilio WhatsApp sender; one opted-in subscriber per delivery, one approved template per language."""

    kind = "whatsapp"
    default_rate_per_second: ClassVar[float] = 10.0
    registered_text: ClassVar[bool] = True  # an update's marker cannot be added to a Content template at send time
    sample: ClassVar[Mapping[str, Any]] = {
        "account_sid_env": "TWILIO_ACCOUNT_SID", "auth_token_env": "TWILIO_AUTH_TOKEN",
        "from": "whatsapp:+15005550006", "recipients": "recipients.csv",
        "content_sid": {"road_closure": {"ar": "HX" + "0" * 32, "en": "HX" + "1" * 32}},
    }

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> WhatsAppOptions:
        keys = KindTable(table, kind=cls.kind, where=where,
                         keys={**TWILIO_KEYS, "content_sid": True, "exercise_content_sid": False})
        sender = twilio_keys(keys)
        if sender["from_"] is not None:
            number = sender["from_"].removeprefix(PREFIX)
            if not sender["from_"].startswith(PREFIX) or not check_phone(number):
                raise ConfigError(f"key 'from': must be \"{PREFIX}\" and an E.164 number, e.g. "
                                  f"\"{PREFIX}+971501234567\"", where=where)
        live = _content_sids(table["content_sid"], "content_sid", where)
        exercise: ContentSids = ()
        if keys.has("exercise_content_sid"):
            if table.get("exercise") is not True:
                raise ConfigError("key 'exercise_content_sid': only an exercise = true channel is sent exercise "
                                  "templates", where=where)
            exercise = _content_sids(table["exercise_content_sid"], "exercise_content_sid", where)
            shared = sorted({sid for *_, sid in live} & {sid for *_, sid in exercise})
            if shared:
                raise ConfigError(f"key 'exercise_content_sid': {shared[0]} is also in 'content_sid'; an exercise "
                                  "template carries the exercise marker, so it is never the live one", where=where)
        return WhatsAppOptions(**sender, recipients=keys.path("recipients", base_dir), content_sid=live,
                               exercise_content_sid=exercise)

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        return [Rendered(lang, forms[lang]["long"], lengths.utf16_length(forms[lang]["long"]), WHATSAPP_LIMIT,
                         "characters") for lang in config.languages]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.utf16_length(text)

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes | None:
        """The template, the mode and the ContentVariables; a value WhatsApp would refuse stops the fire."""
        language = rendered.language
        text = document.texts[language]["long"]
        for name in dict.fromkeys(PLACEHOLDER.findall(text)):
            _check_value(name, language, document.values[name][language])
        return orjson.dumps({
            "template": document.template,
            "exercise": document.status == EXERCISE_STATUS,
            "variables": content_variables(text, document.values, language),
        })

    @classmethod
    def template_problems(cls, config: ChannelConfig, template_id: str, *, exercise: bool) -> list[str]:
        options = config.options_of(WhatsAppOptions)
        key = "exercise_content_sid" if exercise else "content_sid"
        return [f"key {key!r} has no Content SID for {template_id} in {lang} "
                f"({key}.{template_id} = {{ {lang} = \"HX…\" }})"
                for lang in config.languages if options.sid(template_id, lang, exercise=exercise) is None]

    def message_params(self, message: OutboundMessage) -> dict[str, Any]:
        if message.payload is None:
            raise DeliveryError(Reason.BAD_REQUEST, "whatsapp delivery has no template payload", retryable=False)
        payload = orjson.loads(message.payload)
        exercise = bool(payload["exercise"])
        sid = self.config.options_of(WhatsAppOptions).sid(payload["template"], message.language, exercise=exercise)
        if sid is None:  # channels.toml changed after the alert was committed
            key = "exercise_content_sid" if exercise else "content_sid"
            raise DeliveryError(Reason.BAD_REQUEST, f"whatsapp: {self.config.where} has no {key} for "
                                f"{payload['template']} in {message.language}", retryable=False)
        return {"content_sid": sid, "content_variables": orjson.dumps(payload["variables"]).decode()}


def _content_sids(value: Any, key: str, where: str) -> ContentSids:
    """``{template: {language: "HX…"}}`` as (template, language, sid) rows; ConfigError naming the entry."""
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"key {key!r}: must be a table of template ids, e.g. {key}.road_closure = "
                          "{ ar = \"HX…\", en = \"HX…\" }", where=where)
    rows: list[tuple[str, str, str]] = []
    for template_id, by_language in value.items():
        if not _TEMPLATE_ID.fullmatch(template_id):
            raise ConfigError(f"key {key!r}: {template_id!r} is not a template id", where=where)
        if not isinstance(by_language, dict) or not by_language:
            raise ConfigError(f"key {key!r}: {template_id} must be {{ ar = \"HX…\", en = \"HX…\" }}", where=where)
        for language, sid in by_language.items():
            if language not in LANGUAGES:
                raise ConfigError(f"key {key!r}: {template_id}.{language}: the languages are ar and en", where=where)
            if not isinstance(sid, str) or not _CONTENT_SID.fullmatch(sid):
                raise ConfigError(f"key {key!r}: {template_id}.{language} must be a Content SID (HX and 32 "
                                  "hexadecimal digits)", where=where)
            rows.append((template_id, language, sid))
    return tuple(rows)


def _check_value(name: str, language: str, value: str) -> None:
    """WhatsApp refuses a template value that is empty, breaks a line, holds a tab or runs five spaces."""
    problem = ("is empty" if not value.strip() else "holds a line break or a tab" if re.search(r"[\n\r\t]", value)
               else "runs more than four spaces" if _SPACES.search(value) else None)
    if problem is not None:
        raise VariableError(f"variable {name!r} ({language}) {problem}; WhatsApp refuses such a template value, "
                            "so nothing was sent")
