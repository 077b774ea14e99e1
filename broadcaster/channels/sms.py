"""SMS through Twilio Programmable Messaging (the Twilio parts shared with WhatsApp are in ``twilio_api``).

Config: ``account_sid_env``, ``auth_token_env``, exactly one of ``from`` or
``messaging_service_sid``, ``recipients`` (CSV ``phone,language,area``) and
``max_segments`` (1-10). Shaping: the short form, one SMS per recipient in their
language, measured in segments. A Message carries the text as its ``Body``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from broadcaster.channels.base import OutboundMessage
from broadcaster.channels.twilio_api import TWILIO_KEYS, TwilioChannel, TwilioOptions, twilio_keys
from broadcaster.config import ChannelConfig, KindTable
from broadcaster.templates.render import Forms, Rendered
from broadcaster.text import lengths

__all__ = ["SmsChannel", "SmsOptions"]

DEFAULT_MAX_SEGMENTS: Final = 4


@dataclass(frozen=True, kw_only=True)
class SmsOptions(TwilioOptions):
    """A Twilio sender, its phone list, and the most segments one SMS may take."""

    max_segments: int = DEFAULT_MAX_SEGMENTS


class SmsChannel(TwilioChannel):
    """One Twilio sender (a ``from`` number or a messaging service); one phone per delivery."""

    kind = "sms"
    default_rate_per_second: ClassVar[float] = 10.0
    sample: ClassVar[Mapping[str, Any]] = {"account_sid_env": "TWILIO_ACCOUNT_SID", "from": "+15005550006",
                                           "auth_token_env": "TWILIO_AUTH_TOKEN", "recipients": "recipients.csv"}

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> SmsOptions:
        keys = KindTable(table, kind=cls.kind, where=where, keys={**TWILIO_KEYS, "max_segments": False})
        return SmsOptions(
            **twilio_keys(keys),
            recipients=keys.path("recipients", base_dir),
            max_segments=keys.whole_number("max_segments", 1, 10, DEFAULT_MAX_SEGMENTS),
        )

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        limit = config.options_of(SmsOptions).max_segments
        counts = [(lang, forms[lang]["short"], lengths.sms_count(forms[lang]["short"])) for lang in config.languages]
        return [Rendered(lang, text, n.segments, limit, "segments", n.segments, n.encoding) for lang, text, n in counts]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.sms_count(text).units if text else 0

    def message_params(self, message: OutboundMessage) -> dict[str, Any]:
        return {"body": message.text}
