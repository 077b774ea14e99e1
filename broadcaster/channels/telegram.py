"""Telegram channels: one Bot API ``sendMessage`` per delivery, through python-telegram-bot.

Config: ``chat_id``, ``token_env``, ``layout`` (``combined``: both languages in one
message, Arabic first; ``separate``: one each), ``on_unknown`` and ``card``. Shaping: a
bold headline and the long form as escaped HTML, measured in characters (Unicode code
points, as TDLib's ``utf8_length`` counts them) after Telegram parses the entities (4096).
With ``card = true`` each message is a ``sendPhoto`` of the alert card (a combined message:
its first language's), whose caption is the bold headline and the short form: a caption
holds 1,024 characters, too few for the long form.

``telegram.Bot`` is used bare: no ``Application``, no polling, no rate limiter, no
retries (PTB makes one HTTP request per call, and httpx's retries default to zero).
Every Telegram channel of a run shares one PTB request object (one httpx client,
pool and TLS context; in a dry-run, one that answers as the Bot API would); each has
its own ``Bot`` and passes its own timeouts on every call. Two SDK habits need care:
the token sits in the URL path, which PTB (building a Bot) and httpx (every request)
log, so the channel registers it with :data:`LOG_SCRUBBER` and scrubs every error
text; and PTB's ``BadRequest`` subclasses ``NetworkError``, so
:func:`classify_telegram` decides the permanent classes first. The SDK is imported
when a channel opens, never by ``render`` or ``parse_options``.
"""

from __future__ import annotations

import functools
import html
import importlib
import time
import zlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson

from broadcaster.channels.base import (
    POOL_SIZE,
    AlertDocument,
    Channel,
    Clients,
    OutboundMessage,
    Receipt,
    carried_cards,
)
from broadcaster.channels.gate import httpx_transport
from broadcaster.channels.telegram_errors import classify_telegram
from broadcaster.config import ChannelConfig, KindOptions, KindTable
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import SecretScrubber
from broadcaster.states import OnUnknown
from broadcaster.templates.render import Forms, Rendered, shown_once
from broadcaster.text import lengths

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.request import BaseRequest, HTTPXRequest

DEFAULT_API_BASE: Final = "https://api.telegram.org"
CAPTION_LIMIT: Final = 1024  # code points of a photo's caption, after entities are parsed
TELEGRAM_SEPARATOR: Final = "\n\n—————\n\n"

# Loggers that print the request URL, and so the token: PTB when it builds a Bot,
# httpx for every request; httpcore is included in case a future version adds URLs.
_URL_LOGGERS: Final = ("telegram.Bot", "telegram.request.BaseRequest", "telegram.request.HTTPXRequest", "httpx",
                        "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")
LOG_SCRUBBER: Final = SecretScrubber(_URL_LOGGERS)

# The HTTP status of the last Bot API answer in this task. PTB's exceptions drop the
# status (a 502 becomes a bare NetworkError), but the attempt log wants it.
_last_status: ContextVar[int | None] = ContextVar("telegram_last_status", default=None)


class Layout(StrEnum):
    """How a channel with both languages posts them."""

    COMBINED = "combined"  # one message, Arabic then English
    SEPARATE = "separate"  # one message per language


@dataclass(frozen=True, kw_only=True)
class TelegramOptions(KindOptions):
    """``chat_id`` (``@channel`` or a numeric id), the bot's ``token_env``, ``layout`` and ``on_unknown``."""

    chat_id: str
    token_env: str
    layout: Layout = Layout.COMBINED
    on_unknown: OnUnknown = OnUnknown.RESEND
    card: bool = False


def telegram_html(forms: Forms, language: str, form: str = "long") -> str:
    """Bold headline, then ``form`` (the long form; a card's caption: the short); an exercise marker shows once."""
    headline, body = forms[language]["headline"], forms[language][form]
    body = shown_once(headline, body)
    return f"<b>{html.escape(headline, quote=False)}</b>\n\n{html.escape(body, quote=False)}"


class TelegramChannel(Channel):
    """Posts to one chat (``chat_id``) as one bot (``token_env``), in HTML parse mode.

    Telegram cannot be asked whether a message already went out, so after a timeout
    the channel's ``on_unknown`` policy decides (default resend).
    """

    kind = "telegram"
    can_reconcile = False
    default_rate_per_second: ClassVar[float] = 1.0
    sample: ClassVar[Mapping[str, Any]] = {"chat_id": "@authority_alerts", "token_env": "TELEGRAM_TOKEN"}

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> TelegramOptions:
        keys = KindTable(table, kind=cls.kind, where=where,
                         keys={"chat_id": True, "token_env": True, "layout": False, "on_unknown": False,
                               "card": False})
        chat_id = table["chat_id"]
        if isinstance(chat_id, int) and not isinstance(chat_id, bool):
            chat_id = str(chat_id)  # a numeric chat id may be written as a TOML integer
        else:
            chat_id = keys.text("chat_id", "an @channel name or a numeric chat id")
        return TelegramOptions(
            chat_id=chat_id,
            token_env=keys.env("token_env"),
            layout=keys.choice("layout", Layout, Layout.COMBINED),
            on_unknown=keys.choice("on_unknown", OnUnknown, OnUnknown.RESEND),
            card=keys.flag("card", default=False),
        )

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        languages, options = config.languages, config.options_of(TelegramOptions)
        form, limit = ("short", CAPTION_LIMIT) if options.card else ("long", lengths.TELEGRAM_LIMIT)
        if options.layout is Layout.COMBINED and len(languages) > 1:
            text = TELEGRAM_SEPARATOR.join(telegram_html(forms, lang, form) for lang in languages)
            shaped = [("+".join(languages), text)]
        else:
            shaped = [(lang, telegram_html(forms, lang, form)) for lang in languages]
        return [Rendered(lang, text, lengths.telegram_length(text), limit, "characters") for lang, text in shaped]

    @classmethod
    def card_languages(cls, config: ChannelConfig) -> tuple[str, ...]:
        options = config.options_of(TelegramOptions)
        return carried_cards(config, card=options.card, combined=options.layout is Layout.COMBINED)

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes | None:
        """With ``card = true``: the card's PNG (a combined message carries its first language's card)."""
        return document.card_of(rendered.language) if config.options_of(TelegramOptions).card else None

    @classmethod
    def measure_piece(cls, text: str) -> int:
        # A variable is HTML-escaped into the message; Telegram counts it after the entities are parsed.
        return len(html.unescape(html.escape(text)))

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(TelegramOptions)
        self._bot: Bot | None = None

    @property
    def on_unknown(self) -> OnUnknown:
        return self.options.on_unknown

    @property
    def chat_id(self) -> str:
        return self.options.chat_id

    async def open(self) -> None:
        if self._bot is not None:
            return
        from telegram import Bot

        request = await self.clients.shared("telegram", self._make_request, _shutdown)
        token = self.secret("token_env")
        # Register before building the Bot: its constructor logs the URL with the token.
        LOG_SCRUBBER.add(token)
        api_base = self.config.api_base or DEFAULT_API_BASE
        # The same request object serves getUpdates, which is never called, so PTB
        # builds no second client. Bot.initialize() is skipped on purpose: it costs a
        # getMe round trip and puts the token in its InvalidToken message.
        self._bot = Bot(token.reveal(), base_url=f"{api_base}/bot", request=request, get_updates_request=request)

    async def _make_request(self) -> BaseRequest:
        live, recording = _requests()
        if self.clients.recording:
            return recording(self.clients)
        # httpx loads anyio's asyncio backend on its first connection (~35 ms of imports): load it
        # now, while the channels open, so it is not paid between the commit and the first post.
        importlib.import_module("anyio._backends._asyncio")
        importlib.import_module("anyio.streams.tls")
        import httpx

        # httpx's first Headers(...) walks every registered Mapping ABC subclass (~20 ms); pay it here too.
        httpx.Headers({"accept": "application/json"})
        # Room for every Telegram channel at once; each call passes its own channel's timeouts.
        # The transport is PTB's own (HTTP/1.1, the pool size) plus the fence's last look (channels.gate).
        transport = httpx_transport(verify=self.clients.ssl_context(), limits=httpx.Limits(max_connections=POOL_SIZE))
        request = live(connection_pool_size=POOL_SIZE, httpx_kwargs={"transport": transport})
        await request.initialize()
        return request

    async def close(self) -> None:
        for secret in self.secrets():
            LOG_SCRUBBER.discard(secret)
        self._bot = None
        await super().close()

    async def send(self, message: OutboundMessage) -> Receipt:
        if self._bot is None:
            raise RuntimeError(f"{self!r} is not open: use 'async with channel'")
        from telegram import LinkPreviewOptions, ReplyParameters
        from telegram.constants import ParseMode
        from telegram.error import TelegramError

        reply = None
        if message.reply_to is not None:
            try:
                reply_id = int(self.provider_ref(message.reply_to))
            except ValueError:
                raise DeliveryError(
                    Reason.BAD_REQUEST,
                    f"telegram: reply_to {message.reply_to!r} is not a Telegram message id",
                    retryable=False,
                ) from None
            # A deleted original must not stop a correction from going out.
            reply = ReplyParameters(message_id=reply_id, allow_sending_without_reply=True)
        timeout = self.config.timeout_s
        status_token = _last_status.set(None)
        try:
            if message.payload is not None:  # the alert card, the text as its caption
                sent = await self._bot.send_photo(
                    chat_id=self.chat_id, photo=message.payload, caption=message.text, parse_mode=ParseMode.HTML,
                    reply_parameters=reply, read_timeout=timeout, write_timeout=timeout, connect_timeout=timeout,
                    pool_timeout=timeout)
            else:
                sent = await self._bot.send_message(
                    chat_id=self.chat_id, text=message.text, parse_mode=ParseMode.HTML,
                    link_preview_options=LinkPreviewOptions(is_disabled=True), reply_parameters=reply,
                    read_timeout=timeout, write_timeout=timeout, connect_timeout=timeout, pool_timeout=timeout)
        except TelegramError as exc:
            # "from None": the SDK exception chain may carry the URL, and so the token.
            raise classify_telegram(exc, http_status=_last_status.get(), secrets=self.secrets()) from None
        finally:
            _last_status.reset(status_token)
        return self.receipt(str(sent.message_id), 200)


async def _shutdown(request: BaseRequest) -> None:
    await request.shutdown()


@functools.cache
def _requests() -> tuple[type[HTTPXRequest], Callable[[Clients], BaseRequest]]:
    """The two PTB request backends, defined on first use so importing this module loads no SDK."""
    from telegram.request import BaseRequest, HTTPXRequest, RequestData

    class StatusRecordingRequest(HTTPXRequest):
        """PTB's httpx backend, noting each answer's HTTP status for the attempt log."""

        async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
            code, payload = await super().do_request(*args, **kwargs)
            _last_status.set(code)
            return code, payload

    class RecordingRequest(BaseRequest):
        """The dry-run backend: answers ``sendMessage`` as the Bot API would, after the simulated latency."""

        def __init__(self, clients: Clients) -> None:
            self._clients = clients

        @property
        def read_timeout(self) -> float | None:
            return None

        async def initialize(self) -> None:
            return None

        async def shutdown(self) -> None:
            return None

        async def do_request(
            self, url: str, method: str, request_data: RequestData | None = None, *_: Any, **__: Any
        ) -> tuple[int, bytes]:
            number = await self._clients.answer("telegram")
            params = request_data.parameters if request_data is not None else {}
            if not url.endswith(("/sendMessage", "/sendPhoto")):
                body: dict[str, Any] = {"ok": False, "error_code": 404, "description": "Not Found"}
                _last_status.set(404)
                return 404, orjson.dumps(body)
            result = {"message_id": number, "date": int(time.time()), "chat": _chat(str(params.get("chat_id", "")))}
            if url.endswith("/sendPhoto"):
                result["caption"] = params.get("caption")
                result["photo"] = [{"file_id": f"dry-run-photo-{number}", "file_unique_id": f"p{number}",
                                    "width": 1080, "height": 1080}]
            else:
                result["text"] = params.get("text")
            _last_status.set(200)
            return 200, orjson.dumps({"ok": True, "result": result})

    return StatusRecordingRequest, RecordingRequest


def _chat(chat_id: str) -> dict[str, Any]:
    """The Chat object of an answer: a numeric id as given, an ``@username`` a stable made-up id."""
    if chat_id.lstrip("-").isdigit():
        return {"id": int(chat_id), "type": "channel"}
    username = chat_id.lstrip("@")
    return {"id": -1_000_000_000_000 - zlib.crc32(username.encode()), "type": "channel", "username": username}
