"""Twilio Programmable Messaging, shared by the ``sms`` and ``whatsapp`` kinds (not a kind itself).

Both kinds create Messages through the real async twilio SDK (imported when a
channel opens) and differ only in what they put in the request: an SMS sends a
``Body``, a WhatsApp message a pre-approved template (``ContentSid`` and
``ContentVariables``) to ``whatsapp:`` addresses. Everything else is here, once:
the sender keys, the transport, status callbacks and reconciliation; Twilio's
answers are classified in :mod:`broadcaster.channels.twilio_errors`.

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
import re
import secrets
from abc import abstractmethod
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import orjson

from broadcaster.channels.base import Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.http import close_session, open_session
from broadcaster.channels.twilio_errors import classify_twilio
from broadcaster.config import ChannelConfig, KindTable, RecipientListOptions
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.secret import Redactor, Secret

__all__ = ["DEFAULT_API_BASE", "TWILIO_KEYS", "TwilioChannel", "TwilioOptions", "twilio_keys"]

log = logging.getLogger(__name__)

DEFAULT_API_BASE: Final = "https://api.twilio.com"
# A pinned, non-empty environment: the SDK reads TWILIO_EDGE/TWILIO_REGION (and
# credentials) from os.environ only when this mapping is empty.
_SDK_ENVIRONMENT: Final = {"BROADCASTER_TWILIO_ENVIRONMENT": "pinned"}
_SERVICE_SID: Final = re.compile(r"MG[0-9a-fA-F]{32}")
_WHITESPACE: Final = re.compile(r"\s+")


@dataclass(frozen=True, kw_only=True)
class TwilioOptions(RecipientListOptions):
    """One Twilio sender (``from_`` address or ``messaging_service_sid``) and its recipient list."""

    account_sid_env: str
    auth_token_env: str
    from_: str | None = None
    messaging_service_sid: str | None = None


TWILIO_KEYS: Final = {"account_sid_env": True, "auth_token_env": True, "from": False, "messaging_service_sid": False,
                      "recipients": True}


def twilio_keys(keys: KindTable) -> dict[str, Any]:
    """The sender keys every Twilio kind shares, checked: exactly one of ``from`` or ``messaging_service_sid``."""
    if keys.has("from") == keys.has("messaging_service_sid"):
        raise ConfigError("set exactly one of 'from' or 'messaging_service_sid'", where=keys.where)
    service = keys.optional_text("messaging_service_sid")
    if service is not None and not _SERVICE_SID.fullmatch(service):
        raise ConfigError("key 'messaging_service_sid': must be MG followed by 32 hexadecimal digits",
                          where=keys.where)
    return {
        "account_sid_env": keys.env("account_sid_env"),
        "auth_token_env": keys.env("auth_token_env"),
        "from_": keys.optional_text("from"),
        "messaging_service_sid": service,
    }


# (status, headers) of the last Twilio answer in this task: the SDK's exceptions drop the headers.
_last_response: ContextVar[tuple[int, Mapping[str, str]] | None] = ContextVar("twilio_last_response", default=None)


class TwilioChannel(Channel):
    """A Twilio sender; one recipient per delivery. A kind adds what its messages carry (:meth:`message_params`)."""

    can_reconcile = True
    reconcile_page_size: ClassVar[int] = 1000  # Twilio's maximum
    reconcile_max_pages: ClassVar[int] = 50
    # Twilio stamps date_created to the second, by its own clock.
    reconcile_skew: ClassVar[timedelta] = timedelta(seconds=60)

    def __init__(self, config: ChannelConfig, clients: Clients) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(TwilioOptions)
        self._client: Any = None

    @abstractmethod
    def message_params(self, message: OutboundMessage) -> dict[str, Any]:
        """What this kind's Message carries besides ``to`` and the sender (``body``, or a template)."""

    async def open(self) -> None:
        if self._client is not None:
            return
        from twilio.rest import Client

        # The account SID is not a credential, but it is half of one: it is held (and scrubbed) like the token.
        account_sid, auth_token = self.secret("account_sid_env"), self.secret("auth_token_env")
        session = None if self.clients.recording else await self.clients.shared(
            "twilio", functools.partial(open_session, self.clients), close_session)
        transport = _transport()(session, self.clients, provider=self.kind, timeout_s=self.config.timeout_s,
                                 secrets=self.secrets())
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
        assert self.options.messaging_service_sid is not None  # twilio_keys guarantees exactly one
        return {"messaging_service_sid": self.options.messaging_service_sid, **extra}

    def _require_client(self) -> Any:
        if self._client is None:
            raise RuntimeError("use the channel inside 'async with' before sending")
        return self._client

    async def send(self, message: OutboundMessage) -> Receipt:
        client = self._require_client()
        if not message.recipient:
            raise DeliveryError(Reason.BAD_REQUEST, f"{self.kind} delivery has no recipient", retryable=False)
        params = self.message_params(message)
        _last_response.set(None)
        try:
            sent = await client.messages.create_async(to=message.recipient, **params, **self._sender())
        except _failures() as exc:
            error = self._classify(exc)
        else:
            seen = _last_response.get()
            return self.receipt(sent.sid, seen[0] if seen else 201, sent.status)
        raise error  # outside the except block: no chained SDK exception with request details

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        """The receipt of a message like this one (recipient, text, sender) created since ``since``.

        The list is filtered by ``To`` (and ``From`` when the channel has one)
        but deliberately *not* by ``DateSent``: a message Twilio accepted but still
        queues has no ``date_sent`` yet, which is exactly the message a crash leaves
        behind. ``date_created`` is checked here instead. The text is compared with
        runs of white space folded, since a template Twilio filled in may wrap lines
        its own way; anything else that differs is another message.
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
        if record.to != message.recipient or _folded(record.body) != _folded(message.text):
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


def _folded(text: str | None) -> str:
    return _WHITESPACE.sub(" ", text or "").strip()


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

        def __init__(self, session: Any, clients: Clients, *, provider: str, timeout_s: float,
                     secrets: tuple[Secret, ...]) -> None:
            # pool_connections=False: no session of its own. max_retries=None: never RetryClient, which re-POSTs.
            super().__init__(pool_connections=False, timeout=timeout_s, logger=log, max_retries=None)
            self.session, self._clients, self._provider = session, clients, provider
            self._redactor = Redactor(secrets)

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
                number = await self._clients.answer(self._provider)
                status, body = _recorded_answer(number, method, url, data or {})
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
