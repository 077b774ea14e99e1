"""``{kind: class}``: how channels are built from config. No plugins, no scanning.

Adding a kind is one module in this package and one line in :data:`KINDS`.
Importing this module imports no provider SDK: the kinds load theirs when a
channel opens, so ``preview``, ``templates check`` and ``channels check`` stay fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from broadcaster.channels.base import Channel, Clients
from broadcaster.channels.cap_push import CapPushChannel
from broadcaster.channels.cell_broadcast import CellBroadcastChannel
from broadcaster.channels.email import EmailChannel
from broadcaster.channels.facebook import FacebookChannel
from broadcaster.channels.instagram import InstagramChannel
from broadcaster.channels.sms import SmsChannel
from broadcaster.channels.telegram import TelegramChannel
from broadcaster.channels.webhook import WebhookChannel
from broadcaster.channels.whatsapp import WhatsAppChannel
from broadcaster.channels.x import XChannel
from broadcaster.config import ChannelConfig, parse_channel
from broadcaster.errors import ConfigError
from broadcaster.templates.render import EXERCISE_MARKER, Forms, Rendered

if TYPE_CHECKING:
    from broadcaster.cards.render import Fonts

KINDS: dict[str, type[Channel]] = {
    "x": XChannel,
    "telegram": TelegramChannel,
    "sms": SmsChannel,
    "webhook": WebhookChannel,
    "whatsapp": WhatsAppChannel,
    "email": EmailChannel,
    "facebook": FacebookChannel,
    "instagram": InstagramChannel,
    "cap_push": CapPushChannel,
    "cell_broadcast": CellBroadcastChannel,
}


def kind_of(config: ChannelConfig) -> type[Channel]:
    """The class of ``config``'s kind."""
    return KINDS[config.kind]


def build_channels(configs: Iterable[ChannelConfig], clients: Clients, *, mode: str) -> list[Channel]:
    """One channel per config, on ``clients``: the same adapters whether they record or send.

    A real send (``clients`` live) refuses to start while any secret it needs is
    missing, and names every missing environment variable at once. A dry-run needs
    none: its channels sign with masked placeholders.
    """
    configs = list(configs)
    if not clients.recording:
        missing = [f"{c.id}.{key} -> ${env}" for c in configs for key, env in c.missing_env()]
        if missing:
            raise ConfigError(
                f"{mode} send needs these environment variables, which are not set: {', '.join(missing)}",
                where=str(configs[0].source) if configs else None,
            )
    return [kind_of(c).serving(c)(c, clients) for c in configs]


@dataclass(frozen=True, slots=True)
class Target:
    """A channel (or one kind at its defaults) as ``templates check`` sees it.

    Satisfies :class:`broadcaster.templates.check.Target`; templates never import channels.
    A channel that carries alert cards is also measured by the lines its cards' headline
    takes at the card's smallest size (``card headline lines``).
    """

    name: str
    config: ChannelConfig
    _fonts: list[Fonts] = field(default_factory=list, compare=False, repr=False)  # loaded on first need

    @property
    def kind(self) -> str:
        return self.config.kind

    def render(self, forms: Forms) -> list[Rendered]:
        kind = kind_of(self.config)
        return kind.render(forms, self.config) + [self._card_row(forms, lang)
                                                   for lang in kind.card_languages(self.config)]

    def _card_row(self, forms: Forms, language: str) -> Rendered:
        from broadcaster.cards.render import Fonts, headline_fit  # Pillow: only when a channel carries cards

        if not self._fonts:
            self._fonts.append(Fonts())
        headline = forms[language]["headline"].removeprefix(EXERCISE_MARKER[language] + " ")
        needed, most = headline_fit(headline, language, self._fonts[0])
        return Rendered(f"{language} card", headline, needed, most, "card headline lines")

    def measure_piece(self, text: str) -> int:
        return kind_of(self.config).measure_piece(text)


def default_config(kind: str, *, languages: tuple[str, ...] = ("ar", "en")) -> ChannelConfig:
    """A channel of ``kind`` with every optional key at its default (from the kind's ``sample`` table)."""
    table = {"id": f"default-{kind}", "kind": kind, "languages": list(languages), **KINDS[kind].sample}
    return parse_channel(table, KINDS, source=Path("<defaults>"), base_dir=Path.cwd())


def targets(configs: Iterable[ChannelConfig] | None) -> list[Target]:
    """What ``templates check`` proves the worst case against: each channel, or each kind at its defaults."""
    if configs is None:
        return [Target(f"default {kind}", default_config(kind)) for kind in KINDS]
    return [Target(f"channel {c.id!r}", c) for c in configs]
