"""Telegram channels: one Bot API ``sendMessage`` per delivery, through python-telegram-bot.

Config: ``chat_id``, ``token_env``, ``layout`` (``combined``: both languages in one
message, Arabic first; ``separate``: one each) and ``on_unknown``. Shaping: a bold
headline and the long form as escaped HTML, measured in UTF-16 units after Telegram
parses the entities (4096).

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
import warnings
import zlib
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson

from broadcaster.channels.base import POOL_SIZE, Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.gate import httpx_transport
from broadcaster.config import ChannelConfig, KindOptions, KindTable
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, SecretScrubber, scrub
from broadcaster.states import OnUnknown
from broadcaster.templates.render import EXERCISE_MARKER, Forms, Rendered
from broadcaster.text import lengths

if TYPE_CHECKING:
    from telegram import Bot
    from telegram.error import RetryAfter
    from telegram.request import BaseRequest, HTTPXRequest

DEFAULT_API_BASE: Final = "https://api.telegram.org"
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


def telegram_html(forms: Forms, language: str) -> str:
    """Bold headline, then the long form; an exercise marker is shown once, on the headline."""
    headline, long = forms[language]["headline"], forms[language]["long"]
    marker = EXERCISE_MARKER[language] + " "
    if headline.startswith(marker) and long.startswith(marker):
        long = long.removeprefix(marker)
    return f"<b>{html.escape(headline, quote=False)}</b>\n\n{html.escape(long, quote=False)}"


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
                         keys={"chat_id": True, "token_env": True, "layout": False, "on_unknown": False})
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
        )

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        languages = config.languages
        if config.options_of(TelegramOptions).layout is Layout.COMBINED and len(languages) > 1:
            text = TELEGRAM_SEPARATOR.join(telegram_html(forms, lang) for lang in languages)
            shaped = [("+".join(languages), text)]
        else:
            shaped = [(lang, telegram_html(forms, lang)) for lang in languages]
        return [Rendered(lang, text, lengths.telegram_length(text), lengths.TELEGRAM_LIMIT, "UTF-16 units")
                for lang, text in shaped]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        # A variable is HTML-escaped into the message; Telegram counts it after the entities are parsed.
        return lengths.utf16_length(html.unescape(html.escape(text)))

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
            sent = await self._bot.send_message(
                chat_id=self.chat_id,
                text=message.text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_parameters=reply,
                read_timeout=timeout,
                write_timeout=timeout,
                connect_timeout=timeout,
                pool_timeout=timeout,
            )
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
            if not url.endswith("/sendMessage"):
                body: dict[str, Any] = {"ok": False, "error_code": 404, "description": "Not Found"}
                _last_status.set(404)
                return 404, orjson.dumps(body)
            result = {
                "message_id": number,
                "date": int(time.time()),
                "chat": _chat(str(params.get("chat_id", ""))),
                "text": params.get("text"),
            }
            _last_status.set(200)
            return 200, orjson.dumps({"ok": True, "result": result})

    return StatusRecordingRequest, RecordingRequest


def _chat(chat_id: str) -> dict[str, Any]:
    """The Chat object of an answer: a numeric id as given, an ``@username`` a stable made-up id."""
    if chat_id.lstrip("-").isdigit():
        return {"id": int(chat_id), "type": "channel"}
    username = chat_id.lstrip("@")
    return {"id": -1_000_000_000_000 - zlib.crc32(username.encode()), "type": "channel", "username": username}


def classify_telegram(
    exc: Exception, *, http_status: int | None = None, secrets: tuple[Secret, ...] = ()
) -> DeliveryError:
    """Map a python-telegram-bot exception to a :class:`DeliveryError`.

    ================================  ==============  =========  ==========
    PTB exception                     reason          retryable  sent_maybe
    ================================  ==============  =========  ==========
    RetryAfter (429)                  RATE_LIMITED    yes        no
    Forbidden (kicked, blocked)       RECIPIENT_GONE  no         no
    ChatMigrated                      RECIPIENT_GONE  no         no
    BadRequest "chat not found"       RECIPIENT_GONE  no         no
    BadRequest (anything else)        BAD_REQUEST     no         no
    InvalidToken (401, 404)           AUTH            no         no
    TimedOut (read/write)             TIMEOUT         yes        yes
    TimedOut (connect/pool)           TIMEOUT         yes        no
    NetworkError, connection refused  NETWORK         yes        no
    NetworkError, other transport     NETWORK         yes        yes
    other answers: see ``_by_status``
    ================================  ==============  =========  ==========

    Order matters: ``BadRequest`` and ``TimedOut`` subclass ``NetworkError``, so every
    specific class is decided before the ``NetworkError`` branch. ``http_status`` is
    the answer's status when known (PTB's exceptions drop it); ``secrets`` are masked
    in the message.
    """
    import httpx
    from telegram import error as tg

    text = "telegram: " + scrub(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, tg.RetryAfter):
        return DeliveryError(
            Reason.RATE_LIMITED, text, retryable=True, retry_after=_retry_after_s(exc), http_status=429
        )
    if isinstance(exc, tg.Forbidden):
        return DeliveryError(Reason.RECIPIENT_GONE, text, retryable=False, http_status=403)
    if isinstance(exc, tg.ChatMigrated):
        # A group became a supergroup: channels.toml needs the new chat id.
        return DeliveryError(
            Reason.RECIPIENT_GONE, text, retryable=False, http_status=400,
            provider_code=f"migrated:{exc.new_chat_id}",
        )
    if isinstance(exc, tg.BadRequest):
        gone = "chat not found" in exc.message.lower()
        reason = Reason.RECIPIENT_GONE if gone else Reason.BAD_REQUEST
        return DeliveryError(reason, text, retryable=False, http_status=400)
    if isinstance(exc, tg.InvalidToken):
        return DeliveryError(Reason.AUTH, text, retryable=False, http_status=http_status or 401)
    cause = exc.__cause__
    if isinstance(exc, tg.TimedOut):
        # A connect or pool timeout means the request never left this machine.
        unsent = isinstance(cause, httpx.ConnectTimeout | httpx.PoolTimeout)
        return DeliveryError(Reason.TIMEOUT, text, retryable=True, sent_maybe=not unsent)
    if isinstance(exc, tg.NetworkError) and cause is not None and not isinstance(cause, tg.TelegramError):
        # The transport failed (PTB chains the httpx error). Only a refused or
        # unreachable connection proves the request did not go out.
        unsent = isinstance(cause, httpx.ConnectError)
        return DeliveryError(Reason.NETWORK, text, retryable=True, sent_maybe=not unsent)
    return _by_status(text, http_status)


def _by_status(text: str, status: int | None) -> DeliveryError:
    """An answer PTB has no special class for, judged by its HTTP status.

    5xx (a 502 from Telegram's front end) and unknown statuses are SERVER, retryable;
    a 429 without ``retry_after`` is RATE_LIMITED; other 4xx are permanent. A 2xx here
    means the body was unreadable, so the message may well be out.
    """
    if status is None or status >= 500:
        return DeliveryError(Reason.SERVER, text, retryable=True, http_status=status)
    if status == 429:
        return DeliveryError(Reason.RATE_LIMITED, text, retryable=True, http_status=status)
    if status >= 400:
        return DeliveryError(Reason.BAD_REQUEST, text, retryable=False, http_status=status)
    return DeliveryError(Reason.SERVER, text, retryable=True, http_status=status, sent_maybe=True)


def _retry_after_s(exc: RetryAfter) -> float:
    from telegram.warnings import PTBDeprecationWarning

    # PTB 22 warns that retry_after will become a timedelta; accept either form.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: int | float | timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
