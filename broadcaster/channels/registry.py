"""``{kind: class}``: how channels are built from config. No plugins, no scanning."""

from __future__ import annotations

from collections.abc import Iterable

from broadcaster.channels.base import Channel
from broadcaster.channels.recorder import RecorderChannel
from broadcaster.channels.sms import SmsChannel
from broadcaster.channels.telegram import TelegramChannel
from broadcaster.channels.webhook import WebhookChannel
from broadcaster.channels.x import XChannel
from broadcaster.config import ChannelConfig
from broadcaster.errors import ConfigError

CHANNEL_CLASSES: dict[str, type[Channel]] = {
    "x": XChannel,
    "telegram": TelegramChannel,
    "sms": SmsChannel,
    "webhook": WebhookChannel,
}


def build_channels(
    configs: Iterable[ChannelConfig], mode: str, *, recorder_latency_s: float = 0.2, status_callback: str | None = None
) -> list[Channel]:
    """Real channels for exercise and live; recorders for dry-run.

    A real send refuses to start while any secret it needs is missing, and
    names every missing environment variable at once. ``status_callback`` (the
    service's ``{public_url}/twilio/status``) asks Twilio for delivery receipts.
    """
    configs = list(configs)
    if mode == "dry-run":
        return [RecorderChannel(c, latency_s=recorder_latency_s) for c in configs]
    missing = [f"{c.id}.{key} -> ${env}" for c in configs for key, env in c.missing_env()]
    if missing:
        raise ConfigError(
            f"{mode} send needs these environment variables, which are not set: {', '.join(missing)}",
            where=str(configs[0].source) if configs else None,
        )
    return [
        SmsChannel(c, status_callback=status_callback) if c.kind == "sms" else CHANNEL_CLASSES[c.kind](c)
        for c in configs
    ]
