"""SMS through Twilio Programmable Messaging, with the real async SDK.

Config: ``account_sid_env``, ``auth_token_env``, exactly one of ``from`` or
``messaging_service_sid``, the ``recipients`` list and ``max_segments`` (1-10).
Shaping: the short form, one SMS per recipient in their language; length in
segments (GSM-7 or UCS-2, as the handset counts them).

Every Twilio channel of a run shares one ``aiohttp.ClientSession`` (one pool, one TLS
context), under its own :class:`AsyncTwilioHttpClient` subclass from :func:`_transports`.
Three SDK behaviours shape that subclass (twilio 9.x):

* ``AsyncTwilioHttpClient(max_retries=N)`` wraps its session in aiohttp_retry's
  ``RetryClient``, which re-POSTs on 5xx and network errors: one alert, several
  texts. The transport keeps the plain shared session; the engine owns the one
  retry loop.
* The async client ignores its own ``timeout``: it passes the per-call timeout
  (``None`` from ``create_async``) to aiohttp, and ``None`` there means *no limit
  at all*. The transport substitutes the channel's ``timeout_s`` on every request.
* Error exceptions carry no response headers, so ``Retry-After`` on a 429 would
  be lost. The transport notes the last response in a context variable, which is
  per task, so concurrent sends never see each other's headers.

``client.api.base_url`` points the SDK at ``api_base`` and a non-empty
``environment`` stops ``TWILIO_EDGE``/``TWILIO_REGION`` from rewriting the host.

In a dry-run the transport's ``request`` answers locally: a 201 Message with an
``SM…`` sid for a send, an empty page for a reconcile. The SDK still builds the
request and parses the answer; nothing is kept but a count.

The SDK (twilio, aiohttp) is imported on first use, never by ``render`` or ``parse_options``.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import secrets
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import orjson

from broadcaster.channels.base import POOL_SIZE, Channel, Clients, OutboundMessage, Receipt, parse_retry_after
from broadcaster.config import ChannelConfig, KindTable, RecipientListOptions
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.secret import Secret, scrub
from broadcaster.templates.render import Forms, Rendered
from broadcaster.text import lengths

__all__ = ["DEFAULT_API_BASE", "RECIPIENT_GONE_CODES", "SmsChannel", "SmsOptions", "classify_twilio"]

log = logging.getLogger(__name__)

DEFAULT_API_BASE: Final = "https://api.twilio.com"
DEFAULT_MAX_SEGMENTS: Final = 4
RATE_LIMIT_CODE: Final = 20429
AUTH_CODES: Final = frozenset({20003})
RECIPIENT_GONE_CODES: Final = frozenset({
    21211,  # invalid 'To' number
    21610,  # recipient replied STOP
    21612,  # 'To' not reachable by SMS from this sender
    21614,  # 'To' is not a mobile number
})
# Statuses after which the provider may already have acted on the POST.
_MAYBE_SENT_STATUSES: Final = frozenset({500, 502, 504})
# A pinned, non-empty environment: the SDK reads TWILIO_EDGE/TWILIO_REGION (and
# credentials) from os.environ only when this mapping is empty.
_SDK_ENVIRONMENT: Final = {"BROADCASTER_TWILIO_ENVIRONMENT": "pinned"}


@dataclass(frozen=True, kw_only=True)
class SmsOptions(RecipientListOptions):
    """One Twilio sender (``from_`` number or ``messaging_service_sid``) and its recipient list."""

    account_sid_env: str
    auth_token_env: str
    from_: str | None = None
    messaging_service_sid: str | None = None
    max_segments: int = DEFAULT_MAX_SEGMENTS


@dataclass(frozen=True, slots=True)
class _Seen:
    status: int
    headers: Mapping[str, str]


_last_response: ContextVar[_Seen | None] = ContextVar("broadcaster_twilio_last_response", default=None)


class SmsChannel(Channel):
    """One Twilio sender (a ``from`` number or a messaging service); one recipient per delivery."""

    kind = "sms"
    can_reconcile = True
    default_rate_per_second: ClassVar[float] = 10.0
    sample: ClassVar[Mapping[str, Any]] = {
        "account_sid_env": "TWILIO_ACCOUNT_SID", "auth_token_env": "TWILIO_AUTH_TOKEN",
        "from": "+15005550006", "recipients": "recipients/residents.csv",
    }
    reconcile_page_size: ClassVar[int] = 1000  # Twilio's maximum
    reconcile_max_pages: ClassVar[int] = 50
    # Twilio stamps date_created to the second, by its own clock.
    reconcile_skew: ClassVar[timedelta] = timedelta(seconds=60)

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> SmsOptions:
        keys = KindTable(table, kind=cls.kind, where=where, keys={
            "account_sid_env": True, "auth_token_env": True, "from": False, "messaging_service_sid": False,
            "recipients": True, "max_segments": False,
        })
        if keys.has("from") == keys.has("messaging_service_sid"):
            raise ConfigError("set exactly one of 'from' or 'messaging_service_sid'", where=where)
        return SmsOptions(
            account_sid_env=keys.env("account_sid_env"),
            auth_token_env=keys.env("auth_token_env"),
            from_=keys.optional_text("from"),
            messaging_service_sid=keys.optional_text("messaging_service_sid"),
            recipients=keys.path("recipients", base_dir),
            max_segments=keys.whole_number("max_segments", 1, 10, DEFAULT_MAX_SEGMENTS),
        )

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        limit = config.options_of(SmsOptions).max_segments
        rendered = []
        for lang in config.languages:
            text = forms[lang]["short"]
            count = lengths.sms_count(text)
            rendered.append(Rendered(lang, text, count.segments, limit, "segments", count.segments, count.encoding))
        return rendered

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return lengths.sms_count(text).units if text else 0

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(SmsOptions)
        self._client: Any = None

    async def open(self) -> None:
        if self._client is not None:
            return
        from twilio.rest import Client

        live, recording = _transports()
        # The account SID is not a credential, but it is half of one: it is held (and scrubbed) like the token.
        account_sid = self.secret("account_sid_env")
        auth_token = self.secret("auth_token_env")
        if self.clients.recording:
            transport = recording(self.clients, timeout_s=self.config.timeout_s, secrets=self.secrets())
        else:
            session = await self.clients.shared("sms", self._make_session, _close)
            transport = live(session, timeout_s=self.config.timeout_s, secrets=self.secrets())
        client = Client(account_sid.reveal(), auth_token.reveal(), http_client=transport,
                        environment=dict(_SDK_ENVIRONMENT))
        client.api.base_url = self.config.api_base or DEFAULT_API_BASE
        self._client = client

    async def _make_session(self) -> Any:
        import aiohttp

        connector = aiohttp.TCPConnector(ssl=self.clients.ssl_context(), limit=POOL_SIZE)
        return aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        self._client = None  # the session is shared: Clients closes it with the run
        await super().close()

    def _sender(self) -> dict[str, str]:
        callback = self.clients.status_callback
        extra = {"status_callback": callback} if callback else {}
        if self.options.from_:
            return {"from_": self.options.from_, **extra}
        assert self.options.messaging_service_sid is not None  # parse_options guarantees exactly one
        return {"messaging_service_sid": self.options.messaging_service_sid, **extra}

    def _require_client(self) -> Any:
        if self._client is None:
            raise RuntimeError("use the channel inside 'async with' before sending")
        return self._client

    async def send(self, message: OutboundMessage) -> Receipt:
        client = self._require_client()
        if not message.recipient:
            raise DeliveryError(Reason.BAD_REQUEST, "sms delivery has no recipient", retryable=False)
        _last_response.set(None)
        try:
            sent = await client.messages.create_async(to=message.recipient, body=message.text, **self._sender())
        except _failures() as exc:
            error = self._classify(exc)
        else:
            seen = _last_response.get()
            return self.receipt(sent.sid, seen.status if seen else 201, sent.status)
        raise error  # outside the except block: no chained SDK exception with request details

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        """The receipt of a message like this one (recipient, body, sender) created since ``since``.

        The list is filtered by ``To`` (and ``From`` when the channel has a number)
        but deliberately *not* by ``DateSent``: a message Twilio accepted but still
        queues has no ``date_sent`` yet, which is exactly the message a crash leaves
        behind. ``date_created`` is checked here instead.
        """
        client = self._require_client()
        if not message.recipient:
            return None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        floor = since.astimezone(UTC) - self.reconcile_skew
        filters: dict[str, Any] = {"to": message.recipient, "page_size": self.reconcile_page_size}
        if self.options.from_:
            filters["from_"] = self.options.from_
        _last_response.set(None)
        try:
            page = await client.messages.page_async(**filters)
            for _ in range(self.reconcile_max_pages):
                for record in page:
                    if self._matches(record, message, floor):
                        return self.receipt(record.sid, 200, f"reconciled: {record.status}")
                page = await page.next_page_async()
                if page is None:
                    return None
        except _failures() as exc:
            error = self._classify(exc)
        else:
            error = DeliveryError(
                Reason.SERVER,
                f"reconcile gave up after {self.reconcile_max_pages} pages of messages to one recipient",
                retryable=False,
                sent_maybe=True,
            )
        raise error

    def _matches(self, record: Any, message: OutboundMessage, floor: datetime) -> bool:
        if record.to != message.recipient or _lines(record.body) != _lines(message.text):
            return False
        if record.direction is not None and not str(record.direction).startswith("outbound"):
            return False
        if self.options.from_ and record.from_ != self.options.from_:
            return False
        if not self.options.from_ and record.messaging_service_sid != self.options.messaging_service_sid:
            return False
        created = record.date_created
        return not isinstance(created, datetime) or created >= floor

    def _classify(self, exc: BaseException) -> DeliveryError:
        seen = _last_response.get()
        return classify_twilio(exc, headers=seen.headers if seen else None, secrets=self.secrets())


@functools.cache
def _failures() -> tuple[type[BaseException], ...]:
    """What a Twilio call may raise for provider or network trouble (anything else is a bug)."""
    import aiohttp
    from twilio.base.exceptions import TwilioException

    return (TwilioException, aiohttp.ClientError, TimeoutError, OSError, json.JSONDecodeError)


def _lines(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n")


async def _close(session: Any) -> None:
    await session.close()


@functools.cache
def _transports() -> tuple[type[Any], type[Any]]:
    """The live and the recording Twilio HTTP client, defined on first use (importing twilio is slow)."""
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.http.response import Response

    class Transport(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
        """The SDK's async HTTP client on a shared session, retries off, a real timeout, quiet logs."""

        def __init__(self, session: Any, *, timeout_s: float, secrets: tuple[Secret, ...]) -> None:
            # pool_connections=False: the SDK would build its own session; it gets the shared one.
            # max_retries=None: never aiohttp_retry's RetryClient, which re-POSTs.
            super().__init__(pool_connections=False, timeout=timeout_s, logger=log, max_retries=None)
            self.session = session
            self._secrets = secrets

        async def request(
            self,
            method: str,
            url: str,
            params: dict[str, object] | None = None,
            data: dict[str, object] | None = None,
            headers: dict[str, str] | None = None,
            auth: tuple[str, str] | None = None,
            timeout: float | None = None,  # noqa: ASYNC109  (the SDK's signature)
            allow_redirects: bool = False,
        ) -> Any:
            if auth is not None:
                # The SDK would build aiohttp.BasicAuth, deprecated since aiohttp 3.14.
                headers = {**(headers or {}), "Authorization": _basic_auth(*auth)}
            response = await self.exchange(method, url, params, data, headers,
                                           self.timeout if timeout is None else timeout)
            _last_response.set(_Seen(response.status_code, response.headers or {}))
            return response

        async def exchange(
            self, method: str, url: str, params: dict[str, object] | None, data: dict[str, object] | None,
            headers: dict[str, str] | None, timeout: float,  # noqa: ASYNC109
        ) -> Any:
            """One HTTP exchange through the SDK's aiohttp code; the recording transport answers instead."""
            return await super().request(method, url, params=params, data=data, headers=headers, auth=None,
                                         timeout=timeout, allow_redirects=False)

        def log_request(self, kwargs: dict[str, Any]) -> None:
            # The SDK logs query params (phone numbers) and headers at INFO; we log the path only.
            log.debug("twilio %s %s", kwargs["method"], scrub(urlsplit(str(kwargs["url"])).path, self._secrets))

        def log_response(self, status_code: int, response: object) -> None:
            log.debug("twilio answered HTTP %s", status_code)

        async def close(self) -> None:
            """The session is shared by every Twilio channel: :class:`Clients` closes it with the run."""

    class RecordingTransport(Transport):
        """The dry-run transport: answers as Twilio would, after the simulated latency; no session at all."""

        def __init__(self, clients: Clients, *, timeout_s: float, secrets: tuple[Secret, ...]) -> None:
            super().__init__(None, timeout_s=timeout_s, secrets=secrets)
            self._clients = clients

        async def exchange(
            self, method: str, url: str, params: dict[str, object] | None, data: dict[str, object] | None,
            headers: dict[str, str] | None, timeout: float,  # noqa: ASYNC109
        ) -> Any:
            self.log_request({"method": method, "url": url})
            number = await self._clients.answer("sms")
            status, body = _recorded_answer(number, method, url, data or {})
            self.log_response(status, None)
            return Response(status, orjson.dumps(body).decode(), {"Content-Type": "application/json"})

    return Transport, RecordingTransport


def _basic_auth(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def _recorded_answer(number: int, method: str, url: str, data: Mapping[str, object]) -> tuple[int, dict[str, Any]]:
    """Twilio's answer in a dry-run: a queued Message for a create, an empty page for a list."""
    path = urlsplit(url).path
    account = path.split("/Accounts/", 1)[1].split("/", 1)[0] if "/Accounts/" in path else ""
    if method == "GET":
        return 200, {"messages": [], "first_page_uri": path, "next_page_uri": None, "previous_page_uri": None,
                     "page": 0, "page_size": 50, "start": 0, "end": 0, "uri": path}
    now = format_datetime(datetime.now(UTC), usegmt=True)
    sid = "SM" + secrets.token_hex(16)
    return 201, {
        "sid": sid, "account_sid": account, "to": data.get("To"), "from": data.get("From"),
        "messaging_service_sid": data.get("MessagingServiceSid"), "body": data.get("Body"), "status": "queued",
        "direction": "outbound-api", "num_segments": None, "date_created": now, "date_updated": now,
        "date_sent": None, "error_code": None, "error_message": None, "price": None, "api_version": "2010-04-01",
        "uri": f"{path.removesuffix('.json')}/{sid}.json", "subresource_uris": {}, "sequence": number,
    }


def classify_twilio(
    exc: BaseException,
    *,
    headers: Mapping[str, str] | None = None,
    secrets: tuple[Secret, ...] = (),
) -> DeliveryError:
    """Map anything the Twilio SDK or aiohttp raised into one DeliveryError.

    ===========================  ==============  =========  ==========
    outcome                      reason          retryable  sent_maybe
    ===========================  ==============  =========  ==========
    HTTP 429 or code 20429       RATE_LIMITED    yes        no
    21211, 21610, 21612, 21614   RECIPIENT_GONE  no         no
    HTTP 401 or code 20003       AUTH            no         no
    HTTP 500, 502, 504           SERVER          yes        yes
    other 5xx (503 ...)          SERVER          yes        no
    other 4xx                    BAD_REQUEST     no         no
    2xx with an unreadable body  SERVER          yes        yes
    connect refused / DNS        NETWORK         yes        no
    connect timeout              TIMEOUT         yes        no
    read timeout                 TIMEOUT         yes        yes
    dropped after sending        NETWORK         yes        yes
    ===========================  ==============  =========  ==========

    ``headers`` are the failed response's headers when known (the SDK's
    exceptions drop them); ``Retry-After`` there becomes ``retry_after``.
    ``TwilioServiceException`` (RFC 9457 bodies), ``TwilioRestException`` and the
    bare ``TwilioException`` that a failed list page raises are all handled.
    Anything else raises TypeError: it is not a provider answer but a bug.
    """
    import aiohttp
    from twilio.base import exceptions as twilio_exceptions

    # RFC 9457 error bodies raise TwilioServiceException in recent 9.x releases; older
    # releases allowed by pyproject have only TwilioRestException.
    service_errors = tuple(
        cls for cls in (getattr(twilio_exceptions, "TwilioServiceException", None),) if cls is not None
    )
    if isinstance(exc, twilio_exceptions.TwilioRestException):
        return _from_status(int(exc.status), _int_or_none(exc.code), str(exc.msg), headers, secrets)
    if isinstance(exc, service_errors):
        status, code = getattr(exc, "status", 0), getattr(exc, "code", None)
        return _from_status(int(status), _int_or_none(code), _service_text(exc), headers, secrets)
    if isinstance(exc, twilio_exceptions.TwilioException):
        # Page.process_response raises TwilioException("Unable to fetch page", response).
        response = exc.args[1] if len(exc.args) > 1 else None
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            body = str(getattr(response, "text", ""))
            return _from_status(status, _code_from_body(body), str(exc.args[0]), headers, secrets)
        return DeliveryError(Reason.SERVER, scrub(f"twilio: {exc.args[0] if exc.args else exc}", secrets),
                             retryable=True)
    if isinstance(exc, json.JSONDecodeError):
        return DeliveryError(Reason.SERVER, "twilio accepted the request but its answer was unreadable",
                             retryable=True, sent_maybe=True)
    what = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), secrets)
    # Order matters: ConnectionTimeoutError is a TimeoutError raised before any byte left.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return DeliveryError(Reason.TIMEOUT, f"twilio connect timeout: {what}", retryable=True)
    if isinstance(exc, TimeoutError):
        return DeliveryError(Reason.TIMEOUT, f"twilio did not answer in time: {what}", retryable=True,
                             sent_maybe=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return DeliveryError(Reason.NETWORK, f"twilio could not connect: {what}", retryable=True)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return DeliveryError(Reason.NETWORK, f"twilio connection failed mid-request: {what}", retryable=True,
                             sent_maybe=True)
    raise TypeError(f"classify_twilio cannot map {type(exc).__name__}") from exc


def _from_status(
    status: int, code: int | None, text: str, headers: Mapping[str, str] | None, secrets: tuple[Secret, ...]
) -> DeliveryError:
    message = scrub(f"twilio HTTP {status}" + (f" code {code}" if code else "") + f": {text}", secrets)
    provider_code = str(code) if code is not None else None

    def error(reason: Reason, *, retryable: bool, sent_maybe: bool = False) -> DeliveryError:
        retry_after = parse_retry_after((headers or {}).get("Retry-After")) if retryable else None
        return DeliveryError(
            reason, message, retryable=retryable, retry_after=retry_after, http_status=status,
            provider_code=provider_code, sent_maybe=sent_maybe,
        )

    if status == 429 or code == RATE_LIMIT_CODE:
        return error(Reason.RATE_LIMITED, retryable=True)
    if code in RECIPIENT_GONE_CODES:
        return error(Reason.RECIPIENT_GONE, retryable=False)
    if status == 401 or code in AUTH_CODES:
        return error(Reason.AUTH, retryable=False)
    if status >= 500:
        return error(Reason.SERVER, retryable=True, sent_maybe=status in _MAYBE_SENT_STATUSES)
    return error(Reason.BAD_REQUEST, retryable=False)


def _service_text(exc: BaseException) -> str:
    title, detail = getattr(exc, "title", ""), getattr(exc, "detail", None)
    return f"{title}: {detail}" if detail else str(title)


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _code_from_body(body: str) -> int | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return _int_or_none(parsed.get("code")) if isinstance(parsed, dict) else None
