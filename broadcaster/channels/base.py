"""The one Channel protocol every outlet implements.

A channel is built from its checked :class:`~broadcaster.config.ChannelConfig`,
used as ``async with channel: await channel.send(message)``, and raises only
:class:`~broadcaster.errors.DeliveryError` for provider trouble. Each kind maps
its provider's responses and exceptions into that one family in a single
function (``classify_*`` in its module), so retryability is always explicit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import ClassVar, Self

from broadcaster.config import ChannelConfig
from broadcaster.secret import Secret


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One delivery, ready to send: one post in one language, or one SMS to one phone.

    ``text`` is final: rendered, measured and approved. Telegram text is HTML.
    ``reply_to`` is the provider id of the message this one follows up (an update
    or a cancel threads under the original). ``payload`` is the webhook body.
    """

    delivery_id: int
    alert_id: str
    channel_id: str
    language: str
    text: str
    recipient: str | None = None
    reply_to: str | None = None
    payload: bytes | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and restarts, so a partner can drop duplicates."""
        return f"{self.alert_id}/{self.delivery_id}"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the provider said when it accepted a delivery."""

    provider_id: str | None
    http_status: int | None = None
    note: str | None = None


class Channel(ABC):
    """Base of every channel kind. Subclasses set ``kind`` and implement ``send``.

    ``can_reconcile`` says whether the provider can be asked, after a crash,
    whether a delivery already went out (Twilio can list messages). Where it
    cannot, ``on_unknown`` decides: ``"resend"`` or ``"hold"`` for an operator.
    """

    kind: ClassVar[str]
    can_reconcile: ClassVar[bool] = False

    def __init__(self, config: ChannelConfig) -> None:
        if config.kind != self.kind:
            raise ValueError(f"{type(self).__name__} cannot serve a {config.kind!r} channel")
        self.config = config

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def rate_per_second(self) -> float:
        return self.config.rate_per_second

    @property
    def on_unknown(self) -> str:
        return "resend"

    def secrets(self) -> tuple[Secret, ...]:
        """Every secret this channel holds, for scrubbing provider error texts."""
        return ()

    async def open(self) -> None:  # noqa: B027 - optional hook, most kinds need it
        """Create SDK clients and sessions. Called once by ``__aenter__``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions. Called once by ``__aexit__``."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abstractmethod
    async def send(self, message: OutboundMessage) -> Receipt:
        """Send one delivery. Raise DeliveryError on any provider trouble."""

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        """After a crash: the receipt if ``message`` already went out, else None.

        Only called when ``can_reconcile`` is true.
        """
        raise NotImplementedError(f"{self.kind} channels cannot reconcile")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id!r}>"
