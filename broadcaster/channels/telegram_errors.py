"""How a Telegram Bot API failure, as python-telegram-bot raises it, maps into the one DeliveryError family."""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import TYPE_CHECKING

from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, scrub

if TYPE_CHECKING:
    from telegram.error import RetryAfter


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
