"""SMS through Twilio Programmable Messaging (the Twilio parts shared with WhatsApp are in ``twilio_api``).

Config: ``account_sid_env``, ``auth_token_env``, exactly one of ``from`` or
``messaging_service_sid``, ``recipients`` (CSV ``phone,language,area``) and
``max_segments`` (1-10). Shaping: the short form, one SMS per recipient in their
language, measured in segments. The isolates around values are dropped from a text
with no right-to-left character (an English SMS), where they change nothing on
screen, so it stays GSM-7. A Message carries the text as its ``Body``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from broadcaster.channels.base import OutboundMessage
from broadcaster.channels.twilio_api import TWILIO_KEYS, TwilioChannel, TwilioOptions, twilio_keys
from broadcaster.config import ChannelConfig, KindTable
from broadcaster.templates.render import Forms, Rendered, inert_isolates_dropped
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
        texts = [(lang, inert_isolates_dropped(forms[lang]["short"])) for lang in config.languages]
        counts = [(lang, text, lengths.sms_count(text)) for lang, text in texts]
        return [Rendered(lang, text, n.segments, limit, "segments", n.segments, n.encoding) for lang, text, n in counts]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.sms_count(inert_isolates_dropped(text)).units if text else 0

    def message_params(self, message: OutboundMessage) -> dict[str, Any]:
        return {"body": message.text}
