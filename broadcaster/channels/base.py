"""The one Channel protocol every outlet implements, and the per-run :class:`Clients` it sends through.

A channel kind is one class in its own module. Its class methods are pure and
import no SDK, so ``preview``, ``templates check`` and ``channels check`` stay fast:

* ``parse_options`` reads the kind's keys of a ``[[channel]]`` table into its
  typed :class:`~broadcaster.config.KindOptions`;
* ``render`` shapes the rendered template forms into the messages the kind sends,
  each measured the way its provider counts; ``measure_piece`` measures one
  variable's display the same way (``templates check`` picks the worst case with it);
* ``payload`` builds the request body from an :class:`AlertDocument`, for kinds
  that send one.

An instance is built from its checked :class:`~broadcaster.config.ChannelConfig`
on a :class:`Clients`, used as ``async with channel: await channel.send(message)``,
and raises only :class:`~broadcaster.errors.DeliveryError` for provider trouble.
Each kind maps its provider's answers and exceptions into that one family in a
single ``classify_*`` function, so retryability is always explicit.

A dry-run builds the very same channels on a *recording* :class:`Clients`: the
SDK still builds, signs and parses every request, and only the transport at the
bottom answers locally, in the provider's wire format, without opening a socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Self, TypeVar

from broadcaster.config import ChannelConfig, KindOptions
from broadcaster.secret import Redactor, Secret
from broadcaster.states import OnUnknown
from broadcaster.templates.render import Forms, Rendered

__all__ = [
    "DRY_RUN_NOTE",
    "DRY_RUN_PREFIX",
    "POOL_SIZE",
    "AlertDocument",
    "Channel",
    "Clients",
    "OutboundMessage",
    "Receipt",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DRY_RUN_NOTE: Final = "dry-run: not sent"
DRY_RUN_PREFIX: Final = "dry-run-"
"""Every provider id a recording gives starts with this, so a log never passes a simulated post off as real."""
POOL_SIZE: Final = 256
"""Connections in a provider's shared pool: room for every channel of that provider to send at once."""
_PLACEHOLDER: Final = "dry-run-placeholder-secret"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One delivery, ready to send: one post in one language, or one SMS to one phone.

    ``text`` is final: rendered, measured and approved. Telegram text is HTML.
    ``reply_to`` is the provider id of the message this one follows up (an update
    or a cancel threads under the original). ``payload`` is what a kind sends
    besides the text (the webhook's JSON body, an alert card's PNG), built by the kind's ``payload``.
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


@dataclass(frozen=True, slots=True)
class AlertDocument:
    """What a request body may say about one alert; the outbox builds one per alert.

    ``sent`` and ``expires`` are ISO 8601 with the configured offset, to the second;
    ``status`` is the CAP status (Actual, Exercise, Test); ``forms`` holds the
    rendered texts, language -> form (headline, short, long) -> text. ``texts``
    are the approved template's own forms, ``{variable}`` placeholders and all,
    and ``values`` each variable's text per language as the forms show it.
    ``cards`` holds the PNG of each alert card a channel attaches (language ->
    bytes), and ``public_url`` is where ``serve`` publishes the cards
    (``[broadcaster] public_url``). ``cap_xml`` is the alert's CAP document exactly as committed
    (signed when a signing key is configured), for the kinds that send it (``cap_push``).
    ``thread_root`` is the id of the first alert of this alert's thread (None
    when this one is the first) and ``thread_number`` this alert's place in it (0 for the first, then 1, 2 ...
    in the order they were sent): a cell broadcast's message code and update number.
    """

    alert_id: str
    identifier: str
    sender: str
    sent: str
    expires: str
    status: str
    msg_type: str
    references: str | None
    template: str
    cap: Mapping[str, str]
    event: Mapping[str, str]
    areas: tuple[str, ...]
    forms: Forms
    texts: Forms = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    cards: Mapping[str, bytes] = field(default_factory=dict)
    public_url: str | None = None
    cap_xml: bytes | None = None
    thread_root: str | None = None
    thread_number: int = 0

    def card_of(self, language: str) -> bytes:
        """The card a message in ``language`` carries: a combined one (``ar+en``) carries its first language's."""
        return self.cards[language.split("+")[0]]


def carried_cards(config: ChannelConfig, *, card: bool, combined: bool) -> tuple[str, ...]:
    """The languages whose card a channel attaches: none without ``card = true``, the first one when it posts
    both languages combined, else each of its languages."""
    if not card:
        return ()
    return config.languages[:1] if combined else config.languages


class Clients:
    """The transports of one run: live, or recording (dry-run).

    Used as ``async with Clients(recording) as clients:`` around every channel of
    the run. A kind asks for its transport with :meth:`shared`, so channels of one
    provider share one HTTP client, one connection pool and one TLS context
    (:meth:`ssl_context`, so the CA bundle is read once per run, not per channel).
    Everything :meth:`shared` made is closed when the block ends, newest first.

    Recording transports answer after :meth:`answer` (``latency_s``, virtual time
    under a dry-run) and keep only a count per provider in :attr:`recorded`:
    memory stays flat however many messages a rehearsal sends.
    ``status_callback`` is where Twilio should post delivery receipts.
    """

    def __init__(self, recording: bool, latency_s: float = 0.2, status_callback: str | None = None) -> None:
        self.recording = recording
        self.latency_s = latency_s
        self.status_callback = status_callback
        self.recorded: Counter[str] = Counter()
        self._made: dict[str, asyncio.Future[Any]] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def shared(
        self, key: str, factory: Callable[[], Awaitable[T]], closer: Callable[[T], Awaitable[None]]
    ) -> T:
        """The one transport under ``key``, made by ``factory`` on first use; ``closer`` ends it with the run.

        Concurrent callers of a key wait for the same ``factory`` call. A factory that
        fails is forgotten, so a later call tries again.
        """
        if self._closed:
            raise RuntimeError("these Clients are closed")
        made = self._made.get(key)
        if made is None:
            made = asyncio.ensure_future(self._make(factory, closer))
            self._made[key] = made
        try:
            value: T = await asyncio.shield(made)
        except BaseException:
            if made.done() and not made.cancelled() and made.exception() is not None:
                self._made.pop(key, None)
            raise
        return value

    async def _make(self, factory: Callable[[], Awaitable[T]], closer: Callable[[T], Awaitable[None]]) -> T:
        value = await factory()

        async def close() -> None:
            await closer(value)

        self._closers.append(close)
        return value

    def ssl_context(self) -> ssl.SSLContext:
        """One default TLS context per run, shared by every aiohttp session and the httpx client."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def answer(self, provider: str) -> int:
        """A recording transport's turn: count the request, wait the simulated latency, return its number.

        The number (1, 2, ... per provider in this run) is taken before the wait, so
        concurrent requests never share one; recordings use it as the message id.
        """
        self.recorded[provider] += 1
        number = self.recorded[provider]
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return number

    async def aclose(self) -> None:
        """Close every shared transport, newest first; a failing closer is logged, the rest still run."""
        self._closed = True
        for made in self._made.values():
            if not made.done():
                made.cancel()
        self._made.clear()
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            try:
                await close()
            except Exception:
                log.exception("closing a shared transport failed")

    def __repr__(self) -> str:
        mode = "recording" if self.recording else "live"
        return f"<Clients {mode} shared={len(self._closers)}>"


class Channel(ABC):
    """Base of every channel kind.

    A subclass sets ``kind``, ``default_rate_per_second`` and ``sample`` (the
    smallest valid ``[[channel]]`` table of its kind, used for the default
    targets of ``templates check``), implements the class methods
    ``parse_options``, ``render`` and ``measure_piece``, and ``send``.

    ``can_reconcile`` says whether the provider can be asked, after a crash,
    whether a delivery already went out (Twilio can list messages). Where it
    cannot, ``on_unknown`` decides: resend, or hold for an operator.
    """

    kind: ClassVar[str]
    can_reconcile: ClassVar[bool] = False
    needs_public_url: ClassVar[bool] = False  # the provider fetches from ``serve`` (Instagram: the cards)
    card_by_url: ClassVar[bool] = False  # its cards are fetched from ``serve``, not carried in its payloads
    registered_text: ClassVar[bool] = False  # sends only text registered beforehand (WhatsApp): no follow-up marker
    default_rate_per_second: ClassVar[float]
    sample: ClassVar[Mapping[str, Any]]

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        if config.kind != self.kind:
            raise ValueError(f"{type(self).__name__} cannot serve a {config.kind!r} channel")
        self.config = config
        self.clients = clients
        self._secrets: list[Secret] = []
        self._redactor: Redactor | None = None

    # -- what a kind is, without an instance (no SDK import) ---------------------

    @classmethod
    @abstractmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> KindOptions:
        """The kind's own keys of one ``[[channel]]`` table; ConfigError naming ``where`` and the key."""

    @classmethod
    @abstractmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        """The ``(language, text)`` messages a channel of this kind sends, Arabic first, measured."""

    @classmethod
    @abstractmethod
    def measure_piece(cls, text: str) -> int:
        """How this kind's provider counts ``text`` (one variable's display) inside a message."""

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes | None:
        """What ``rendered`` carries besides its text, for a kind that sends more: a body (the webhook's JSON),
        an alert card's PNG (``card = true``), a card's public URL (Instagram); None otherwise.

        May raise an InputError (nothing is committed) for a value the provider would refuse.
        """
        return None

    @classmethod
    def card_languages(cls, config: ChannelConfig) -> tuple[str, ...]:
        """The languages whose alert card a channel with ``config`` sends (their PNGs in its payloads)."""
        return ()

    @classmethod
    def template_problems(cls, config: ChannelConfig, template_id: str, *, exercise: bool) -> list[str]:
        """What keeps a channel of this kind from sending ``template_id`` (empty when nothing does).

        ``channels check`` asks it for every template of the kind, and a fire before
        it commits anything, so a gap in the config is never found at send time.
        ``exercise`` asks about an exercise fire (``channels check`` asks an exercise channel both ways).
        """
        return []

    @classmethod
    def serving(cls, config: ChannelConfig) -> type[Channel]:
        """The class that serves ``config``: the kind's own, unless the kind offers providers (SMS)."""
        return cls

    # -- one channel ---------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def rate_per_second(self) -> float:
        return self.config.rate_per_second

    @property
    def recording(self) -> bool:
        """True in a dry-run: the transport answers locally and nothing leaves the machine."""
        return self.clients.recording

    @property
    def on_unknown(self) -> OnUnknown:
        return OnUnknown.RESEND

    def secret(self, key: str) -> Secret:
        """The secret named by ``key``, held for scrubbing; a masked placeholder in a dry-run without it.

        A real send refuses to start without its secrets (``registry.build_channels``);
        a rehearsal needs none, but still runs the SDK's signing code over the placeholder.
        """
        env_name = self.config.secret_env_names().get(key)
        if self.recording and env_name is not None and not os.environ.get(env_name):
            secret = Secret(_PLACEHOLDER, env_name)
        else:
            secret = self.config.secret(key)
        self._secrets.append(secret)
        self._redactor = None
        return secret

    def secrets(self) -> tuple[Secret, ...]:
        """Every secret this channel holds, for scrubbing provider error texts."""
        return tuple(self._secrets)

    def redactor(self) -> Redactor:
        """Masks every form of this channel's secrets (built once per set of secrets, not per message)."""
        if self._redactor is None:
            self._redactor = Redactor(self._secrets)
        return self._redactor

    def receipt(self, provider_id: str | None, http_status: int | None, note: str | None = None) -> Receipt:
        """The receipt of an accepted delivery; in a dry-run it says so, in the id and in the note."""
        if self.recording:
            simulated = f"{DRY_RUN_PREFIX}{provider_id}" if provider_id is not None else None
            return Receipt(provider_id=simulated, http_status=http_status, note=DRY_RUN_NOTE)
        return Receipt(provider_id=provider_id, http_status=http_status, note=note)

    def provider_ref(self, provider_id: str) -> str:
        """A provider id as the provider knows it: without the dry-run prefix a rehearsal gave it."""
        return provider_id.removeprefix(DRY_RUN_PREFIX) if self.recording else provider_id

    async def open(self) -> None:  # noqa: B027 - optional hook, most kinds need it
        """Get the shared transport and build this channel's SDK client. Called once by ``__aenter__``."""

    async def close(self) -> None:
        """Release what this channel holds (never the shared transport). Called by ``__aexit__``."""
        self._secrets.clear()
        self._redactor = None

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
        return f"<{type(self).__name__} id={self.id!r}{' recording' if self.recording else ''}>"

