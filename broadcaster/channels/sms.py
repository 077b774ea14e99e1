"""SMS through Twilio Programmable Messaging, with the real async SDK (imported when a channel opens).

Config: ``account_sid_env``, ``auth_token_env``, exactly one of ``from`` or
``messaging_service_sid``, ``recipients`` and ``max_segments`` (1-10). Shaping:
the short form, one SMS per recipient in their language, measured in segments.

Every Twilio channel of a run shares one ``aiohttp.ClientSession``, each under its
own :func:`_transport`, which undoes three SDK habits: ``max_retries`` re-POSTs
(the engine owns the one retry loop), a ``None`` per-call timeout means *no limit*
in aiohttp (the channel's ``timeout_s`` is used), and exceptions drop the headers
(``Retry-After``: the last answer is noted per task). ``client.api.base_url`` points
the SDK at ``api_base``; a non-empty ``environment`` stops ``TWILIO_EDGE``/``REGION``
rewriting the host. In a dry-run the transport answers locally (a queued Message,
an empty page for a reconcile), and the SDK parses that.
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

from broadcaster.channels.base import Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.http import close_session, connection_failure, open_session, parse_retry_after
from broadcaster.config import ChannelConfig, KindTable, RecipientListOptions
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.secret import Redactor, Secret, scrub
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


# (status, headers) of the last Twilio answer in this task: the SDK's exceptions drop the headers.
_last_response: ContextVar[tuple[int, Mapping[str, str]] | None] = ContextVar("twilio_last_response", default=None)


class SmsChannel(Channel):
    """One Twilio sender (a ``from`` number or a messaging service); one recipient per delivery."""

    kind = "sms"
    can_reconcile = True
    default_rate_per_second: ClassVar[float] = 10.0
    sample: ClassVar[Mapping[str, Any]] = {"account_sid_env": "TWILIO_ACCOUNT_SID", "from": "+15005550006",
                                           "auth_token_env": "TWILIO_AUTH_TOKEN", "recipients": "recipients.csv"}
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
        counts = [(lang, forms[lang]["short"], lengths.sms_count(forms[lang]["short"])) for lang in config.languages]
        return [Rendered(lang, text, n.segments, limit, "segments", n.segments, n.encoding) for lang, text, n in counts]

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

        # The account SID is not a credential, but it is half of one: it is held (and scrubbed) like the token.
        account_sid, auth_token = self.secret("account_sid_env"), self.secret("auth_token_env")
        session = None if self.clients.recording else await self.clients.shared(
            "sms", functools.partial(open_session, self.clients), close_session)
        transport = _transport()(session, self.clients, timeout_s=self.config.timeout_s, secrets=self.secrets())
        client = Client(account_sid.reveal(), auth_token.reveal(), http_client=transport,
                        environment=dict(_SDK_ENVIRONMENT))
        client.api.base_url = self.config.api_base or DEFAULT_API_BASE
        self._client = client

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
            return self.receipt(sent.sid, seen[0] if seen else 201, sent.status)
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
            error = DeliveryError(Reason.SERVER, f"reconcile gave up after {self.reconcile_max_pages} pages of "
                                  "messages to one recipient", retryable=False, sent_maybe=True)
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
        return classify_twilio(exc, headers=seen[1] if seen else None, secrets=self.secrets())


def _lines(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n")


@functools.cache
def _failures() -> tuple[type[BaseException], ...]:
    """What a Twilio call may raise for provider or network trouble (anything else is a bug)."""
    import aiohttp
    from twilio.base.exceptions import TwilioException

    return (TwilioException, aiohttp.ClientError, TimeoutError, OSError, json.JSONDecodeError)


@functools.cache
def _transport() -> type[Any]:
    """The Twilio HTTP client class, defined on first use (importing twilio is slow)."""
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.http.response import Response

    class Transport(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no type hints
        """The SDK's async HTTP client: retries off, a real timeout, quiet logs; recording without a session."""

        def __init__(self, session: Any, clients: Clients, *, timeout_s: float, secrets: tuple[Secret, ...]) -> None:
            # pool_connections=False: no session of its own. max_retries=None: never RetryClient, which re-POSTs.
            super().__init__(pool_connections=False, timeout=timeout_s, logger=log, max_retries=None)
            self.session, self._clients, self._redactor = session, clients, Redactor(secrets)

        async def request(self, method: str, url: str, params: dict[str, object] | None = None,
                          data: dict[str, object] | None = None, headers: dict[str, str] | None = None,
                          auth: tuple[str, str] | None = None, timeout: float | None = None,  # noqa: ASYNC109
                          allow_redirects: bool = False) -> Any:
            if auth is not None:  # the SDK would build aiohttp.BasicAuth, deprecated since aiohttp 3.14
                login, password = auth
                token = base64.b64encode(f"{login}:{password}".encode()).decode("ascii")
                headers = {**(headers or {}), "Authorization": f"Basic {token}"}
            timeout = self.timeout if timeout is None else timeout
            if self._clients.recording:
                self.log_request({"method": method, "url": url})
                status, body = _recorded_answer(await self._clients.answer("sms"), method, url, data or {})
                self.log_response(status, None)
                response = Response(status, orjson.dumps(body).decode(), {"Content-Type": "application/json"})
            else:
                response = await super().request(method, url, params=params, data=data, headers=headers,
                                                 timeout=timeout, allow_redirects=False)
            _last_response.set((response.status_code, response.headers or {}))
            return response

        def log_request(self, kwargs: dict[str, Any]) -> None:
            # The SDK logs query params (phone numbers) and headers at INFO; we log the path only.
            if log.isEnabledFor(logging.DEBUG):
                log.debug("twilio %s %s", kwargs["method"], self._redactor.clean(urlsplit(str(kwargs["url"])).path))

        def log_response(self, status_code: int, response: object) -> None:
            log.debug("twilio answered HTTP %s", status_code)

        async def close(self) -> None:
            """The session is shared by every Twilio channel: :class:`Clients` closes it with the run."""

    return Transport


def _recorded_answer(number: int, method: str, url: str, data: Mapping[str, object]) -> tuple[int, dict[str, Any]]:
    """Twilio's answer in a dry-run: a queued Message for a create, an empty page for a list."""
    path = urlsplit(url).path
    if method == "GET":
        return 200, {"messages": [], "first_page_uri": path, "next_page_uri": None, "previous_page_uri": None,
                     "page": 0, "page_size": 50, "start": 0, "end": 0, "uri": path}
    now, sid = format_datetime(datetime.now(UTC), usegmt=True), "SM" + secrets.token_hex(16)
    return 201, {
        "sid": sid, "to": data.get("To"), "from": data.get("From"), "body": data.get("Body"), "status": "queued",
        "messaging_service_sid": data.get("MessagingServiceSid"), "direction": "outbound-api",
        "date_created": now, "date_updated": now, "date_sent": None, "api_version": "2010-04-01",
        "uri": f"{path.removesuffix('.json')}/{sid}.json", "sequence": number,
    }


def classify_twilio(
    exc: BaseException, *, headers: Mapping[str, str] | None = None, secrets: tuple[Secret, ...] = ()
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
    connection failures          see ``channels.http.connection_failure``
    ===========================  ==============  =========  ==========

    ``headers`` are the failed response's headers when known (the SDK's
    exceptions drop them); ``Retry-After`` there becomes ``retry_after``.
    ``TwilioServiceException`` (RFC 9457 bodies, recent 9.x), ``TwilioRestException``
    and the bare ``TwilioException`` that a failed list page raises are all handled.
    Anything else raises TypeError: it is not a provider answer but a bug.
    """
    from twilio.base import exceptions as twilio_exceptions

    if isinstance(exc, twilio_exceptions.TwilioRestException):
        return _from_status(int(exc.status), _int_or_none(exc.code), str(exc.msg), headers, secrets)
    service_error = getattr(twilio_exceptions, "TwilioServiceException", None)  # absent from older 9.x releases
    if service_error is not None and isinstance(exc, service_error):
        title, detail = getattr(exc, "title", ""), getattr(exc, "detail", None)
        text = f"{title}: {detail}" if detail else str(title)
        return _from_status(int(getattr(exc, "status", 0)), _int_or_none(getattr(exc, "code", None)), text,
                            headers, secrets)
    if isinstance(exc, twilio_exceptions.TwilioException):
        # Page.process_response raises TwilioException("Unable to fetch page", response).
        response = exc.args[1] if len(exc.args) > 1 else None
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return _from_status(status, _code_from_body(str(getattr(response, "text", ""))), str(exc.args[0]),
                                headers, secrets)
        return DeliveryError(Reason.SERVER, scrub(f"twilio: {exc.args[0] if exc.args else exc}", secrets),
                             retryable=True)
    if isinstance(exc, json.JSONDecodeError):
        return DeliveryError(Reason.SERVER, "twilio accepted the request but its answer was unreadable",
                             retryable=True, sent_maybe=True)
    error = connection_failure(exc, "twilio", secrets)
    if error is None:
        raise TypeError(f"classify_twilio cannot map {type(exc).__name__}") from exc
    return error


def _from_status(
    status: int, code: int | None, text: str, headers: Mapping[str, str] | None, secrets: tuple[Secret, ...]
) -> DeliveryError:
    message = scrub(f"twilio HTTP {status}" + (f" code {code}" if code else "") + f": {text}", secrets)

    def error(reason: Reason, *, retryable: bool, sent_maybe: bool = False) -> DeliveryError:
        retry_after = parse_retry_after((headers or {}).get("Retry-After")) if retryable else None
        return DeliveryError(reason, message, retryable=retryable, retry_after=retry_after, http_status=status,
                             provider_code=str(code) if code is not None else None, sent_maybe=sent_maybe)

    if status == 429 or code == RATE_LIMIT_CODE:
        return error(Reason.RATE_LIMITED, retryable=True)
    if code in RECIPIENT_GONE_CODES:
        return error(Reason.RECIPIENT_GONE, retryable=False)
    if status == 401 or code in AUTH_CODES:
        return error(Reason.AUTH, retryable=False)
    if status >= 500:
        return error(Reason.SERVER, retryable=True, sent_maybe=status in _MAYBE_SENT_STATUSES)
    return error(Reason.BAD_REQUEST, retryable=False)


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def _code_from_body(body: str) -> int | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return _int_or_none(parsed.get("code")) if isinstance(parsed, dict) else None
