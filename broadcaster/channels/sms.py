"""SMS, through Twilio Programmable Messaging (the default) or Infobip: ``provider = "twilio" | "infobip"``.

The provider's API lives in its own module: ``twilio_api`` (shared with WhatsApp) and
``infobip_api``; this module is the kind: its keys, its shaping, and which provider
class serves a channel (:meth:`SmsChannel.serving`).

Config, Twilio: ``account_sid_env``, ``auth_token_env``, exactly one of ``from`` or
``messaging_service_sid``. Infobip: ``base_url`` (the account's API base),
``api_key_env``, ``from``. Both: ``recipients`` (CSV ``phone,language,area``),
``max_segments`` (1-10), and for failover ``fallback`` (another sms channel's id)
and ``circuit`` (``{ failures, window_s, cooldown_s }``, only with a fallback).
Shaping: the short form, one SMS per recipient in their language, measured in
segments. The isolates around values are dropped from a text with no right-to-left
character (an English SMS), where they change nothing on screen, so it stays GSM-7.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Final

from broadcaster.channels.base import Channel, OutboundMessage
from broadcaster.channels.infobip_api import INFOBIP_KEYS, InfobipChannel, InfobipOptions, infobip_keys
from broadcaster.channels.twilio_api import TWILIO_KEYS, TwilioChannel, TwilioOptions, twilio_keys
from broadcaster.config import ChannelConfig, CircuitOptions, KindOptions, KindTable
from broadcaster.errors import ConfigError
from broadcaster.templates.render import Forms, Rendered, inert_isolates_dropped
from broadcaster.text import lengths

__all__ = ["InfobipSmsChannel", "InfobipSmsOptions", "Provider", "SmsChannel", "SmsOptions"]

DEFAULT_MAX_SEGMENTS: Final = 4
_COMMON_KEYS: Final = {"recipients": True, "from": False, "max_segments": False, "provider": False,
                       "fallback": False, "circuit": False}
_CIRCUIT_KEYS: Final = ("failures", "window_s", "cooldown_s")


class Provider(StrEnum):
    TWILIO = "twilio"
    INFOBIP = "infobip"


_PROVIDER_KEYS: Final = {Provider.TWILIO: TWILIO_KEYS, Provider.INFOBIP: INFOBIP_KEYS}


@dataclass(frozen=True, kw_only=True)
class SmsCommon(KindOptions):
    """What every SMS channel has whatever its provider: its segment budget and its failover."""

    max_segments: int = DEFAULT_MAX_SEGMENTS
    fallback: str | None = None
    circuit: CircuitOptions = field(default_factory=CircuitOptions)


@dataclass(frozen=True, kw_only=True)
class SmsOptions(TwilioOptions, SmsCommon):
    """A Twilio sender, its phone list, and the most segments one SMS may take."""


@dataclass(frozen=True, kw_only=True)
class InfobipSmsOptions(InfobipOptions, SmsCommon):
    """An Infobip sender, its phone list, and the most segments one SMS may take."""


def _circuit(keys: KindTable) -> CircuitOptions:
    value = keys.table.get("circuit")
    if value is None:
        return CircuitOptions()
    if not keys.has("fallback"):
        raise ConfigError("key 'circuit': only a channel with a 'fallback' has a circuit", where=keys.where)
    if not isinstance(value, dict) or set(value) - set(_CIRCUIT_KEYS):
        raise ConfigError("key 'circuit': must be a table of failures, window_s and cooldown_s, "
                          "e.g. { failures = 5, window_s = 30, cooldown_s = 60 }", where=keys.where)
    defaults = CircuitOptions()
    failures = value.get("failures", defaults.failures)
    if not isinstance(failures, int) or isinstance(failures, bool) or not 1 <= failures <= 1000:
        raise ConfigError("key 'circuit': failures must be a whole number from 1 to 1000", where=keys.where)
    seconds = {}
    for name in ("window_s", "cooldown_s"):
        number = value.get(name, getattr(defaults, name))
        if not isinstance(number, int | float) or isinstance(number, bool) or not math.isfinite(number) \
                or not 0 < number <= 3600:
            raise ConfigError(f"key 'circuit': {name} must be a number of seconds above 0, at most 3600",
                              where=keys.where)
        seconds[name] = float(number)
    return CircuitOptions(failures=failures, **seconds)


class SmsChannel(TwilioChannel):
    """The sms kind; as a channel, one Twilio sender (a ``from`` number or a messaging service).

    A channel with ``provider = "infobip"`` is served by :class:`InfobipSmsChannel`.
    """

    kind = "sms"
    default_rate_per_second: ClassVar[float] = 10.0
    sample: ClassVar[Mapping[str, Any]] = {"account_sid_env": "TWILIO_ACCOUNT_SID", "from": "+15005550006",
                                           "auth_token_env": "TWILIO_AUTH_TOKEN", "recipients": "recipients.csv"}

    @classmethod
    def serving(cls, config: ChannelConfig) -> type[Channel]:
        return InfobipSmsChannel if isinstance(config.options, InfobipSmsOptions) else cls

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> SmsOptions | InfobipSmsOptions:
        every_key = {**{k: False for keys in _PROVIDER_KEYS.values() for k in keys}, **_COMMON_KEYS}
        keys = KindTable(table, kind=cls.kind, where=where, keys=every_key)
        provider = keys.choice("provider", Provider, Provider.TWILIO)
        own = _PROVIDER_KEYS[provider]
        for key in table:
            if key in every_key and key not in own and key not in _COMMON_KEYS:
                raise ConfigError(f"key {key!r} is not for provider {provider.value!r}", where=where)
        for key, required in own.items():
            if required and key not in table:
                raise ConfigError(f"key {key!r} is required for kind 'sms' with provider {provider.value!r}",
                                  where=where)
        common: dict[str, Any] = {
            "recipients": keys.path("recipients", base_dir),
            "max_segments": keys.whole_number("max_segments", 1, 10, DEFAULT_MAX_SEGMENTS),
            "fallback": keys.optional_text("fallback"),
            "circuit": _circuit(keys),
        }
        if provider is Provider.INFOBIP:
            return InfobipSmsOptions(**infobip_keys(keys), **common)
        return SmsOptions(**twilio_keys(keys), **common)

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        limit = config.options_of(SmsCommon).max_segments
        texts = [(lang, inert_isolates_dropped(forms[lang]["short"])) for lang in config.languages]
        counts = [(lang, text, lengths.sms_count(text)) for lang, text in texts]
        return [Rendered(lang, text, n.segments, limit, "segments", n.segments, n.encoding) for lang, text, n in counts]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.sms_count(inert_isolates_dropped(text)).units if text else 0

    def message_params(self, message: OutboundMessage) -> dict[str, Any]:
        return {"body": message.text}


class InfobipSmsChannel(InfobipChannel):
    """An sms channel with ``provider = "infobip"``: the kind's keys and shaping, Infobip's API."""

    kind = "sms"
    default_rate_per_second: ClassVar[float] = SmsChannel.default_rate_per_second
    sample: ClassVar[Mapping[str, Any]] = {"provider": "infobip", "base_url": "https://xxxx.api.infobip.com",
                                           "api_key_env": "INFOBIP_API_KEY", "from": "CivilDefence",
                                           "recipients": "recipients.csv"}

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> SmsOptions | InfobipSmsOptions:
        return SmsChannel.parse_options(table, where=where, base_dir=base_dir)

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        return SmsChannel.render(forms, config)

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return SmsChannel.measure_piece(text)
