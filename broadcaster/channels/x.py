"""X (Twitter) channels: one ``POST /2/tweets`` per delivery, through tweepy's AsyncClient.

tweepy hard-codes ``https://api.twitter.com`` and takes no session argument, but every
call goes through ``self.session or aiohttp.ClientSession()``. The channel therefore
owns one ``aiohttp.ClientSession`` and assigns it to ``client.session``. That session
carries:

* the timeout (``ClientTimeout(total=timeout_s)``), since tweepy passes none;
* when ``api_base`` is set, a client middleware that rewrites the scheme, host and port
  of api.twitter.com / api.x.com requests to it (OAuth 1.0a signs the original URL,
  which the real X never sees changed, and which a fake does not verify).

Retries: ``wait_on_rate_limit=False`` stops tweepy sleeping and re-posting on 429, and
aiohttp retries a dropped keep-alive connection only for idempotent methods, never
for POST. tweepy logs request headers at DEBUG, OAuth ``Authorization`` included, so
the channel registers its keys with :data:`LOG_SCRUBBER` on tweepy's logger.

X rejects a second post with the same text as duplicate content (403). After a
timeout the engine simply resends, and that 403 proves the first post went out:
:meth:`XChannel.send` returns a receipt for it instead of raising.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp
from tweepy.asynchronous import AsyncClient
from tweepy.errors import HTTPException, TooManyRequests, TweepyException
from yarl import URL

from broadcaster.channels.base import Channel, OutboundMessage, Receipt
from broadcaster.config import ChannelConfig
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, SecretScrubber, scrub

DEFAULT_API_BASE: Final = "https://api.twitter.com"
X_HOSTS: Final = frozenset({"api.twitter.com", "api.x.com"})
DUPLICATE: Final = "duplicate-content"
_SECRET_KEYS: Final = ("api_key_env", "api_secret_env", "access_token_env", "access_secret_env")
_DUPLICATE_V1_CODE: Final = 187  # "Status is a duplicate." in v1.1-style error bodies


# tweepy logs the OAuth header at DEBUG; oauthlib logs the signing parameters.
LOG_SCRUBBER: Final = SecretScrubber(
    (
        "tweepy.asynchronous.client",
        "tweepy.client",
        "oauthlib.oauth1.rfc5849",
        "oauthlib.oauth1.rfc5849.signature",
    )
)


def redirect_middleware(api_base: str) -> aiohttp.ClientMiddlewareType:
    """An aiohttp client middleware sending X API requests to ``api_base`` instead.

    Scheme, host and port are replaced and a path prefix in ``api_base`` is prepended;
    the query is kept byte for byte, as OAuth signed it. Requests to other hosts pass.
    """
    base = URL(api_base)
    prefix = base.raw_path.rstrip("/")

    async def redirect(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if request.url.host in X_HOSTS:
            target = URL.build(
                scheme=base.scheme,
                host=base.raw_host or "",
                port=base.explicit_port,
                path=prefix + request.url.raw_path,
                query_string=request.url.raw_query_string,
                encoded=True,
            )
            request.url = target
            # The Host header was computed from the original URL when the request was built.
            request.headers["Host"] = target.host_port_subcomponent or base.raw_host or ""
        return await handler(request)

    return redirect


class XChannel(Channel):
    """Posts as one X account with OAuth 1.0a user context.

    ``now`` (epoch seconds) is injectable so ``x-rate-limit-reset`` converts to a
    predictable ``retry_after`` in tests.
    """

    kind = "x"
    can_reconcile = False

    def __init__(self, config: ChannelConfig, *, now: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        self._now = now
        self._keys: tuple[Secret, ...] = ()
        self._session: aiohttp.ClientSession | None = None
        self._client: Any = None  # tweepy ships no type hints

    @property
    def on_unknown(self) -> str:
        # A blind resend is safe: X answers a repeat with a duplicate-content 403.
        return "resend"

    def secrets(self) -> tuple[Secret, ...]:
        return self._keys

    async def open(self) -> None:
        if self._client is not None:
            return
        keys = tuple(self.config.secret(key) for key in _SECRET_KEYS)
        for key in keys:
            LOG_SCRUBBER.add(key)
        self._keys = keys
        api_base = (self.config.api_base or DEFAULT_API_BASE).rstrip("/")
        middlewares = () if api_base == DEFAULT_API_BASE else (redirect_middleware(api_base),)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s), middlewares=middlewares
        )
        api_key, api_secret, access_token, access_secret = (key.reveal() for key in keys)
        client = AsyncClient(
            consumer_key=api_key,
            consumer_secret=api_secret,
            access_token=access_token,
            access_token_secret=access_secret,
            wait_on_rate_limit=False,
        )
        # tweepy uses this session for every request and leaves closing it to us.
        client.session = self._session
        self._client = client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        for key in self._keys:
            LOG_SCRUBBER.discard(key)
        self._session = self._client = None
        self._keys = ()

    async def send(self, message: OutboundMessage) -> Receipt:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not open: use 'async with channel'")
        try:
            response = await self._client.create_tweet(
                text=message.text, in_reply_to_tweet_id=message.reply_to, user_auth=True
            )
        except (TweepyException, aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            error = classify_x(exc, now=self._now(), secrets=self._keys)
            if error.provider_code == DUPLICATE:
                return Receipt(provider_id=None, http_status=403, note="duplicate: already posted")
            # "from None": the aiohttp exception chain is of no use and may carry headers.
            raise error from None
        return Receipt(provider_id=str(response.data["id"]), http_status=201)


def classify_x(
    exc: Exception, *, now: float | None = None, secrets: tuple[Secret, ...] = ()
) -> DeliveryError:
    """Map a tweepy or aiohttp exception from ``create_tweet`` to a :class:`DeliveryError`.

    ===============================  ============  =========  ==========
    failure                          reason        retryable  sent_maybe
    ===============================  ============  =========  ==========
    429 TooManyRequests              RATE_LIMITED  yes        no
    5xx TwitterServerError           SERVER        yes        no
    401 Unauthorized                 AUTH          no         no
    403 duplicate content            BAD_REQUEST   no         no
    400, 403, 404, other 4xx         BAD_REQUEST   no         no
    connect timeout                  TIMEOUT       yes        no
    any other timeout                TIMEOUT       yes        yes
    connection refused, DNS          NETWORK       yes        no
    dropped connection mid-request   NETWORK       yes        yes
    2xx with an unreadable body      SERVER        yes        yes
    ===============================  ============  =========  ==========

    An error answer whose body is not JSON (a proxy's HTML page) is judged by its
    status as above. A duplicate-content 403 carries ``provider_code=DUPLICATE``: the
    post is already up, and :meth:`XChannel.send` turns it into a receipt.
    ``retry_after`` on a 429 is ``x-rate-limit-reset`` (epoch seconds) minus ``now``
    (default: the clock), or the 24-hour user cap's reset when that one is spent.
    ``secrets`` are masked in the message.
    """
    detail = " ".join(str(exc).split())  # tweepy puts the API's messages on new lines
    if not isinstance(exc, HTTPException):
        detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    text = "x: " + scrub(detail, secrets)
    if isinstance(exc, HTTPException):
        status = int(exc.response.status)
        codes = [str(code) for code in exc.api_codes]
        if status == 403 and _is_duplicate(exc):
            return DeliveryError(
                Reason.BAD_REQUEST, text, retryable=False, http_status=403, provider_code=DUPLICATE
            )
        if isinstance(exc, TooManyRequests) or status == 429:
            retry_after = _retry_after(exc.response.headers, time.time() if now is None else now)
            return DeliveryError(
                Reason.RATE_LIMITED, text, retryable=True, retry_after=retry_after, http_status=429,
                provider_code=codes[0] if codes else None,
            )
        error = _by_status(text, status)
        error.provider_code = codes[0] if codes else None
        return error
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return DeliveryError(Reason.TIMEOUT, text, retryable=True)
    if isinstance(exc, TimeoutError):
        return DeliveryError(Reason.TIMEOUT, text, retryable=True, sent_maybe=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return DeliveryError(Reason.NETWORK, text, retryable=True)
    if isinstance(exc, aiohttp.ClientResponseError):
        # An answer tweepy could not read, such as a proxy's HTML error page.
        return _by_status(text, exc.status)
    if isinstance(exc, aiohttp.ClientError):
        return DeliveryError(Reason.NETWORK, text, retryable=True, sent_maybe=True)
    # An answer that is not JSON after all, or a TweepyException without a response:
    # the post may be up.
    return DeliveryError(Reason.SERVER, text, retryable=True, sent_maybe=True)


def _by_status(text: str, status: int) -> DeliveryError:
    if status == 429:
        return DeliveryError(Reason.RATE_LIMITED, text, retryable=True, http_status=status)
    if status >= 500:
        return DeliveryError(Reason.SERVER, text, retryable=True, http_status=status)
    if status == 401:
        return DeliveryError(Reason.AUTH, text, retryable=False, http_status=status)
    if status >= 400:
        return DeliveryError(Reason.BAD_REQUEST, text, retryable=False, http_status=status)
    # A success whose body could not be read: the post is probably up.
    return DeliveryError(Reason.SERVER, text, retryable=True, http_status=status, sent_maybe=True)


def _is_duplicate(exc: HTTPException) -> bool:
    return _DUPLICATE_V1_CODE in exc.api_codes or any(
        "duplicate content" in str(message).lower() for message in exc.api_messages
    )


def _retry_after(headers: Any, now: float) -> float | None:
    """Seconds until the limit that stopped us resets, from X's rate-limit headers."""
    reset = _epoch(headers.get("x-rate-limit-reset"))
    if headers.get("x-user-limit-24hour-remaining") == "0":
        daily = _epoch(headers.get("x-user-limit-24hour-reset"))
        if daily is not None and (reset is None or daily > reset):
            reset = daily
    return None if reset is None else max(0.0, reset - now)


def _epoch(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
