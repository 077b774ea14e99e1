"""Telegram channels: one Bot API ``sendMessage`` per delivery, through python-telegram-bot.

The ``telegram.Bot`` is used bare, without an ``Application``: no update polling, no
rate limiter, no retries. PTB's ``HTTPXRequest`` makes exactly one HTTP request per
call (httpx's transport retries default to zero and PTB adds none), so the engine's
single retry loop is the only one.

Two SDK habits need care:

* The bot token sits in the URL path (``/bot<token>/sendMessage``). PTB logs that URL
  at DEBUG when a ``Bot`` is built, and httpx logs every request URL at INFO. The
  channel registers its token with :data:`LOG_SCRUBBER`, a ``logging.Filter`` fixed to
  those loggers, and every provider error text goes through :func:`scrub`.
* PTB's ``BadRequest`` subclasses ``NetworkError``. :func:`classify_telegram` checks the
  permanent classes first and sets ``retryable`` explicitly.
"""

from __future__ import annotations

import importlib
import warnings
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, Final

import httpx
from telegram import Bot, LinkPreviewOptions, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

from broadcaster.channels.base import Channel, OutboundMessage, Receipt
from broadcaster.config import ChannelConfig
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, SecretScrubber, scrub

DEFAULT_API_BASE: Final = "https://api.telegram.org"

# Loggers that print the request URL, and so the token: PTB when it builds a Bot,
# httpx for every request; httpcore is included in case a future version adds URLs.
_URL_LOGGERS: Final = (
    "telegram.Bot",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
)

# The HTTP status of the last Bot API answer in this task. PTB's exceptions drop the
# status (a 502 becomes a bare NetworkError), but the attempt log wants it.
_last_status: ContextVar[int | None] = ContextVar("telegram_last_status", default=None)


LOG_SCRUBBER: Final = SecretScrubber(_URL_LOGGERS)


class _StatusRecordingRequest(HTTPXRequest):
    """PTB's httpx backend, noting each answer's HTTP status for the attempt log."""

    async def do_request(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        code, payload = await super().do_request(*args, **kwargs)
        _last_status.set(code)
        return code, payload


class TelegramChannel(Channel):
    """Posts to one chat (``chat_id``) as one bot (``token_env``), in HTML parse mode.

    Telegram cannot be asked whether a message already went out, so after a timeout
    the channel's ``on_unknown`` policy decides (default ``"resend"``).
    """

    kind = "telegram"
    can_reconcile = False

    def __init__(self, config: ChannelConfig) -> None:
        super().__init__(config)
        self._token: Secret | None = None
        self._request: HTTPXRequest | None = None
        self._bot: Bot | None = None

    @property
    def on_unknown(self) -> str:
        return str(self.config.options.get("on_unknown", "resend"))

    @property
    def chat_id(self) -> str:
        return str(self.config.options["chat_id"])

    def secrets(self) -> tuple[Secret, ...]:
        return (self._token,) if self._token is not None else ()

    async def open(self) -> None:
        if self._bot is not None:
            return
        # httpx loads anyio's asyncio backend on its first connection (~35 ms of imports): load it
        # now, while the channel opens, so it is not paid between the commit and the first post.
        importlib.import_module("anyio._backends._asyncio")
        importlib.import_module("anyio.streams.tls")
        token = self.config.secret("token_env")
        # Register before building the Bot: its constructor logs the URL with the token.
        LOG_SCRUBBER.add(token)
        self._token = token
        timeout = self.config.timeout_s
        request = _StatusRecordingRequest(
            connection_pool_size=16,
            read_timeout=timeout,
            write_timeout=timeout,
            connect_timeout=timeout,
            pool_timeout=timeout,
            media_write_timeout=timeout,
        )
        await request.initialize()
        self._request = request
        api_base = self.config.api_base or DEFAULT_API_BASE
        # The same request object serves getUpdates, which is never called, so PTB
        # builds no second httpx client. Bot.initialize() is skipped on purpose: it
        # costs a getMe round trip and puts the token in its InvalidToken message.
        self._bot = Bot(
            token.reveal(), base_url=f"{api_base}/bot", request=request, get_updates_request=request
        )

    async def close(self) -> None:
        if self._request is not None:
            await self._request.shutdown()
        if self._token is not None:
            LOG_SCRUBBER.discard(self._token)
        self._bot = self._request = self._token = None

    async def send(self, message: OutboundMessage) -> Receipt:
        if self._bot is None:
            raise RuntimeError(f"{self!r} is not open: use 'async with channel'")
        reply = None
        if message.reply_to is not None:
            try:
                reply_id = int(message.reply_to)
            except ValueError:
                raise DeliveryError(
                    Reason.BAD_REQUEST,
                    f"telegram: reply_to {message.reply_to!r} is not a Telegram message id",
                    retryable=False,
                ) from None
            # A deleted original must not stop a correction from going out.
            reply = ReplyParameters(message_id=reply_id, allow_sending_without_reply=True)
        status_token = _last_status.set(None)
        try:
            sent = await self._bot.send_message(
                chat_id=self.chat_id,
                text=message.text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_parameters=reply,
            )
        except TelegramError as exc:
            # "from None": the SDK exception chain may carry the URL, and so the token.
            raise classify_telegram(exc, http_status=_last_status.get(), secrets=self.secrets()) from None
        finally:
            _last_status.reset(status_token)
        return Receipt(provider_id=str(sent.message_id), http_status=200)


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
    text = "telegram: " + scrub(str(exc) or type(exc).__name__, secrets)
    if isinstance(exc, RetryAfter):
        return DeliveryError(
            Reason.RATE_LIMITED, text, retryable=True, retry_after=_retry_after_s(exc), http_status=429
        )
    if isinstance(exc, Forbidden):
        return DeliveryError(Reason.RECIPIENT_GONE, text, retryable=False, http_status=403)
    if isinstance(exc, ChatMigrated):
        # A group became a supergroup: channels.toml needs the new chat id.
        return DeliveryError(
            Reason.RECIPIENT_GONE, text, retryable=False, http_status=400,
            provider_code=f"migrated:{exc.new_chat_id}",
        )
    if isinstance(exc, BadRequest):
        gone = "chat not found" in exc.message.lower()
        reason = Reason.RECIPIENT_GONE if gone else Reason.BAD_REQUEST
        return DeliveryError(reason, text, retryable=False, http_status=400)
    if isinstance(exc, InvalidToken):
        return DeliveryError(Reason.AUTH, text, retryable=False, http_status=http_status or 401)
    cause = exc.__cause__
    if isinstance(exc, TimedOut):
        # A connect or pool timeout means the request never left this machine.
        unsent = isinstance(cause, httpx.ConnectTimeout | httpx.PoolTimeout)
        return DeliveryError(Reason.TIMEOUT, text, retryable=True, sent_maybe=not unsent)
    if isinstance(exc, NetworkError) and cause is not None and not isinstance(cause, TelegramError):
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
    # PTB 22 warns that retry_after will become a timedelta; accept either form.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: int | float | timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
