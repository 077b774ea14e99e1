"""SMS through Twilio Programmable Messaging, with the real async SDK.

Three SDK behaviours shape this module (twilio 9.x):

* ``AsyncTwilioHttpClient(max_retries=N)`` wraps its session in aiohttp_retry's
  ``RetryClient``, which re-POSTs on 5xx and network errors: one alert, several
  texts. :class:`_Transport` keeps a plain ``aiohttp.ClientSession``; the engine
  owns the one retry loop.
* The async client ignores its own ``timeout``: it passes the per-call timeout
  (``None`` from ``create_async``) to aiohttp, and ``None`` there means *no limit
  at all*. :class:`_Transport` substitutes the channel's ``timeout_s``.
* Error exceptions carry no response headers, so ``Retry-After`` on a 429 would
  be lost. :class:`_Transport` notes the last response in a context variable,
  which is per task, so concurrent sends never see each other's headers.

``client.api.base_url`` points the SDK at ``api_base`` and a non-empty
``environment`` stops ``TWILIO_EDGE``/``TWILIO_REGION`` from rewriting the host.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import aiohttp
from twilio.base import exceptions as twilio_exceptions
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from broadcaster.channels.base import Channel, OutboundMessage, Receipt
from broadcaster.channels.webhook import parse_retry_after
from broadcaster.config import ChannelConfig
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, scrub

__all__ = ["DEFAULT_API_BASE", "RECIPIENT_GONE_CODES", "SmsChannel", "classify_twilio"]

log = logging.getLogger(__name__)

DEFAULT_API_BASE: Final = "https://api.twilio.com"
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
# RFC 9457 error bodies raise TwilioServiceException in recent 9.x releases; older
# releases allowed by pyproject have only TwilioRestException.
_SERVICE_ERRORS: Final[tuple[type[BaseException], ...]] = tuple(
    cls for cls in (getattr(twilio_exceptions, "TwilioServiceException", None),) if cls is not None
)


@dataclass(frozen=True, slots=True)
class _Seen:
    status: int
    headers: Mapping[str, str]


_last_response: ContextVar[_Seen | None] = ContextVar("broadcaster_twilio_last_response", default=None)


class _Transport(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """The SDK's async HTTP client with retries off, a real timeout and quiet, secret-free logs."""

    def __init__(self, *, timeout_s: float, secrets: tuple[Secret, ...]) -> None:
        # pool_connections=False: the SDK would build its session here; we build ours below.
        # max_retries=None: never aiohttp_retry's RetryClient, which re-POSTs.
        super().__init__(pool_connections=False, timeout=timeout_s, logger=log, max_retries=None)
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
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
        response = await super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=self.timeout if timeout is None else timeout,
            allow_redirects=False,
        )
        _last_response.set(_Seen(response.status_code, response.headers or {}))
        return response

    def log_request(self, kwargs: dict[str, Any]) -> None:
        # The SDK logs query params (phone numbers) and headers at INFO; we log the path only.
        log.debug("twilio %s %s", kwargs["method"], scrub(urlsplit(str(kwargs["url"])).path, self._secrets))

    def log_response(self, status_code: int, response: object) -> None:
        log.debug("twilio answered HTTP %s", status_code)


def _basic_auth(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


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
    """
    if isinstance(exc, TwilioRestException):
        return _from_status(int(exc.status), _int_or_none(exc.code), str(exc.msg), headers, secrets)
    if isinstance(exc, _SERVICE_ERRORS):
        status, code = getattr(exc, "status", 0), getattr(exc, "code", None)
        return _from_status(int(status), _int_or_none(code), _service_text(exc), headers, secrets)
    if isinstance(exc, TwilioException):
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


class SmsChannel(Channel):
    """One Twilio sender (a ``from`` number or a messaging service); one recipient per delivery."""

    kind = "sms"
    can_reconcile = True
    reconcile_page_size: ClassVar[int] = 1000  # Twilio's maximum
    reconcile_max_pages: ClassVar[int] = 50
    # Twilio stamps date_created to the second, by its own clock.
    reconcile_skew: ClassVar[timedelta] = timedelta(seconds=60)

    def __init__(self, config: ChannelConfig, *, status_callback: str | None = None) -> None:
        super().__init__(config)
        # Where Twilio posts delivery receipts (the service's /twilio/status), when configured.
        self._status_callback = status_callback
        self._from: str | None = config.options.get("from")
        self._service_sid: str | None = config.options.get("messaging_service_sid")
        self._account_sid: Secret | None = None
        self._auth_token: Secret | None = None
        self._transport: _Transport | None = None
        self._client: Any = None

    def secrets(self) -> tuple[Secret, ...]:
        # The account SID is not a credential, but it is half of one: keep it out of texts too.
        return tuple(s for s in (self._auth_token, self._account_sid) if s is not None)

    async def open(self) -> None:
        self._account_sid = self.config.secret("account_sid_env")
        self._auth_token = self.config.secret("auth_token_env")
        self._transport = _Transport(timeout_s=self.config.timeout_s, secrets=self.secrets())
        self._client = Client(
            self._account_sid.reveal(),
            self._auth_token.reveal(),
            http_client=self._transport,
            environment=dict(_SDK_ENVIRONMENT),
        )
        self._client.api.base_url = self.config.api_base or DEFAULT_API_BASE

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.close()
        self._transport = None
        self._client = None

    def _sender(self) -> dict[str, str]:
        extra = {"status_callback": self._status_callback} if self._status_callback else {}
        if self._from:
            return {"from_": self._from, **extra}
        assert self._service_sid is not None  # config guarantees exactly one
        return {"messaging_service_sid": self._service_sid, **extra}

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
            sent = await client.messages.create_async(
                to=message.recipient, body=message.text, **self._sender()
            )
        except (TwilioException, aiohttp.ClientError, TimeoutError, OSError, json.JSONDecodeError) as exc:
            error = self._classify(exc)
        else:
            seen = _last_response.get()
            return Receipt(provider_id=sent.sid, http_status=seen.status if seen else 201, note=sent.status)
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
        if self._from:
            filters["from_"] = self._from
        _last_response.set(None)
        try:
            page = await client.messages.page_async(**filters)
            for _ in range(self.reconcile_max_pages):
                for record in page:
                    if self._matches(record, message, floor):
                        note = f"reconciled: {record.status}"
                        return Receipt(provider_id=record.sid, http_status=200, note=note)
                page = await page.next_page_async()
                if page is None:
                    return None
        except (TwilioException, aiohttp.ClientError, TimeoutError, OSError, json.JSONDecodeError) as exc:
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
        if self._from and record.from_ != self._from:
            return False
        if not self._from and record.messaging_service_sid != self._service_sid:
            return False
        created = record.date_created
        return not isinstance(created, datetime) or created >= floor

    def _classify(self, exc: BaseException) -> DeliveryError:
        seen = _last_response.get()
        return classify_twilio(exc, headers=seen.headers if seen else None, secrets=self.secrets())


def _lines(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n")
