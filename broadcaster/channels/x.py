"""X (Twitter) channels: one ``POST /2/tweets`` per delivery, through tweepy's AsyncClient.

Config: the four OAuth 1.0a ``*_env`` keys of one account, and ``card`` (attach the
alert card: uploaded first, :mod:`broadcaster.channels.x_media`). Shaping: the short
form, one post per language; length as twitter-text v3 weighs it (280).

tweepy hard-codes ``https://api.twitter.com`` and takes no session argument, but every
call goes through ``self.session or aiohttp.ClientSession()``. Each channel's client
therefore gets :class:`_TimedSession`, a thin view of one ``aiohttp.ClientSession``
shared by every X channel of the run with the same ``api_base``. That view adds the
channel's timeout (``ClientTimeout(total=timeout_s)``) to every request, since tweepy
passes none. When ``api_base`` is set, the shared session carries a client middleware
that rewrites the scheme, host and port of api.twitter.com / api.x.com requests to it
(OAuth 1.0a signs the original URL, which the real X never sees changed, and which a
fake does not verify); hence one session per distinct ``api_base``.

In a dry-run the shared session is a
:class:`~broadcaster.channels.recording.RecordingSession` answering ``201
{"data": {"id", "text"}}`` as X would; tweepy still signs and parses every request.

Retries: ``wait_on_rate_limit=False`` stops tweepy sleeping and re-posting on 429, and
aiohttp retries a dropped keep-alive connection only for idempotent methods, never
for POST. tweepy logs request headers at DEBUG, OAuth ``Authorization`` included, so
the channel registers its keys with :data:`LOG_SCRUBBER` on tweepy's logger.

X rejects a second post with the same text as duplicate content (403). After a
timeout the engine simply resends, and that 403 proves the first post went out:
:meth:`XChannel.send` returns a receipt for it instead of raising.

The SDK (tweepy, aiohttp) is imported on first use, never by ``render`` or ``parse_options``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final
from urllib.parse import urlsplit

from broadcaster.channels.base import AlertDocument, Channel, Clients, OutboundMessage, Receipt, carried_cards
from broadcaster.channels.http import close_session, open_session
from broadcaster.channels.recording import RecordedResponse, RecordingSession
from broadcaster.channels.x_media import recorded_upload, upload_card
from broadcaster.config import ChannelConfig, KindOptions, KindTable
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, SecretScrubber, scrub
from broadcaster.templates.render import Forms, Rendered
from broadcaster.text import lengths

if TYPE_CHECKING:
    import aiohttp

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


@dataclass(frozen=True, kw_only=True)
class XOptions(KindOptions):
    """The NAMES of the environment variables holding one account's OAuth 1.0a keys."""

    api_key_env: str
    api_secret_env: str
    access_token_env: str
    access_secret_env: str
    card: bool = False


def redirect_middleware(api_base: str) -> aiohttp.ClientMiddlewareType:
    """An aiohttp client middleware sending X API requests to ``api_base`` instead.

    Scheme, host and port are replaced and a path prefix in ``api_base`` is prepended;
    the query is kept byte for byte, as OAuth signed it. Requests to other hosts pass.
    """
    from yarl import URL

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


class _TimedSession:
    """tweepy's view of a shared session: every request carries this channel's own timeout."""

    def __init__(self, session: Any, timeout: aiohttp.ClientTimeout) -> None:
        self._session = session
        self._timeout = timeout

    def request(self, method: str, url: Any, **kwargs: Any) -> Any:
        return self._session.request(method, url, timeout=self._timeout, **kwargs)


class XChannel(Channel):
    """Posts as one X account with OAuth 1.0a user context.

    ``now`` (epoch seconds) is injectable so ``x-rate-limit-reset`` converts to a
    predictable ``retry_after`` in tests.
    """

    kind = "x"
    can_reconcile = False
    default_rate_per_second: ClassVar[float] = 1.0
    sample: ClassVar[Mapping[str, Any]] = {
        "api_key_env": "X_API_KEY", "api_secret_env": "X_API_SECRET",
        "access_token_env": "X_ACCESS_TOKEN", "access_secret_env": "X_ACCESS_SECRET",
    }

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> XOptions:
        keys = KindTable(table, kind=cls.kind, where=where, keys={**dict.fromkeys(_SECRET_KEYS, True), "card": False})
        return XOptions(
            api_key_env=keys.env("api_key_env"),
            api_secret_env=keys.env("api_secret_env"),
            access_token_env=keys.env("access_token_env"),
            access_secret_env=keys.env("access_secret_env"),
            card=keys.flag("card", default=False),
        )

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        return [Rendered(lang, text, lengths.x_weighted_length(text), lengths.X_LIMIT, "weighted chars")
                for lang, text in ((lang, forms[lang]["short"]) for lang in config.languages)]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.x_weighted_length(text)

    @classmethod
    def card_languages(cls, config: ChannelConfig) -> tuple[str, ...]:
        return carried_cards(config, card=config.options_of(XOptions).card, combined=False)

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes | None:
        """With ``card = true``: the PNG of this post's language's card."""
        return document.card_of(rendered.language) if config.options_of(XOptions).card else None

    def __init__(self, config: ChannelConfig, clients: Clients, *, now: Callable[[], float] = time.time) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(XOptions)
        self._now = now
        self._client: Any = None  # tweepy ships no type hints
        self._keys: tuple[Secret, Secret, Secret, Secret] | None = None

    @property
    def api_base(self) -> str:
        return (self.config.api_base or DEFAULT_API_BASE).rstrip("/")

    async def open(self) -> None:
        if self._client is not None:
            return
        import aiohttp
        from tweepy.asynchronous import AsyncClient

        session = await self.clients.shared(f"x:{self.api_base}", self._make_session, close_session)
        keys = (self.secret("api_key_env"), self.secret("api_secret_env"), self.secret("access_token_env"),
                self.secret("access_secret_env"))
        self._keys = keys
        for key in keys:
            LOG_SCRUBBER.add(key)
        api_key, api_secret, access_token, access_secret = (key.reveal() for key in keys)
        client = AsyncClient(
            consumer_key=api_key,
            consumer_secret=api_secret,
            access_token=access_token,
            access_token_secret=access_secret,
            wait_on_rate_limit=False,
        )
        # tweepy uses this session for every request and leaves closing it to us (Clients does).
        client.session = _TimedSession(session, aiohttp.ClientTimeout(total=self.config.timeout_s))
        self._client = client

    async def _make_session(self) -> Any:
        if self.clients.recording:
            return RecordingSession(self.clients, "x", _recorded_tweet)
        api_base = self.api_base
        middlewares = () if api_base == DEFAULT_API_BASE else (redirect_middleware(api_base),)
        return await open_session(self.clients, middlewares=middlewares)

    async def close(self) -> None:
        for key in self.secrets():
            LOG_SCRUBBER.discard(key)
        self._client = self._keys = None
        await super().close()

    async def send(self, message: OutboundMessage) -> Receipt:
        if self._client is None:
            raise RuntimeError(f"{self!r} is not open: use 'async with channel'")
        import aiohttp
        from tweepy.errors import TweepyException

        reply_to = self.provider_ref(message.reply_to) if message.reply_to is not None else None
        media_ids = None
        if message.payload is not None and self._keys is not None:
            media_ids = [await upload_card(self._client.session, self._keys, message.payload,
                                           name=f"{message.alert_id}-{message.language}.png",
                                           retry_after=lambda headers: _retry_after(headers, self._now()))]
        try:
            response = await self._client.create_tweet(text=message.text, in_reply_to_tweet_id=reply_to,
                                                        media_ids=media_ids, user_auth=True)
        except (TweepyException, aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
            error = classify_x(exc, now=self._now(), secrets=self.secrets())
            if error.provider_code == DUPLICATE:
                return self.receipt(None, 403, "duplicate: already posted")
            # "from None": the aiohttp exception chain is of no use and may carry headers.
            raise error from None
        return self.receipt(str(response.data["id"]), 201)


def _recorded_tweet(number: int, method: str, url: str, request: Mapping[str, Any]) -> RecordedResponse:
    """X's answer to a tweet (or a card's upload), made up in a dry-run: ``201 {"data": {"id", "text"}}``."""
    upload = recorded_upload(number, method, url, request)
    if upload is not None:
        return upload
    if method != "POST" or not urlsplit(url).path.endswith("/2/tweets"):
        return RecordedResponse(404, {"title": "Not Found Error", "detail": f"{method} {urlsplit(url).path}",
                                      "type": "about:blank", "status": 404}, reason="Not Found")
    body = request.get("json") or {}
    tweet_id = str(number)
    data = {"id": tweet_id, "text": body.get("text"), "edit_history_tweet_ids": [tweet_id]}
    return RecordedResponse(201, {"data": data}, reason="Created")


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
    import aiohttp
    from tweepy.errors import HTTPException, TooManyRequests

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


def _is_duplicate(exc: Any) -> bool:
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
