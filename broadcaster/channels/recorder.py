"""The dry-run transport: same pipeline, nothing leaves the machine.

It stands in for any kind, keeps that channel's rate and limits and takes a
simulated provider latency (virtual time under a dry-run). What would have been
sent is in the delivery log (the outbox holds every text); the recorder only
counts, so a dry-run of 100,000 SMS keeps memory flat.
"""

from __future__ import annotations

import asyncio
import itertools

from broadcaster.channels.base import Channel, OutboundMessage, Receipt
from broadcaster.config import ChannelConfig

_ids = itertools.count(1)


class RecorderChannel(Channel):
    kind = "recorder"

    def __init__(self, config: ChannelConfig, *, latency_s: float = 0.2) -> None:
        # Deliberately skips the kind check: a recorder can stand in for any kind.
        self.config = config
        self.latency_s = latency_s
        self.count = 0

    @property
    def simulated_kind(self) -> str:
        return self.config.kind

    async def send(self, message: OutboundMessage) -> Receipt:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        self.count += 1
        return Receipt(provider_id=f"dry-run-{next(_ids)}", note="dry-run: not sent")

    def __repr__(self) -> str:
        return f"<RecorderChannel id={self.id!r} as={self.config.kind!r}>"
