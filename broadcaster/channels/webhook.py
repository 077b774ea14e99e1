"""Partner webhooks: one signed JSON POST per delivery.

Config: ``url`` (http or https, with a host) and ``secret_env``. Shaping: one
message with both languages' long forms, measured in UTF-8 bytes (64 KiB);
the body sent is the JSON built by :meth:`WebhookChannel.payload` from the
alert's :class:`~broadcaster.channels.base.AlertDocument`.

Every POST carries ``X-Broadcaster-Timestamp`` and ``X-Broadcaster-Signature:
sha256=<hex>``, an HMAC-SHA256 over ``f"{timestamp}.".encode() + body`` with the
channel's shared secret, plus ``Idempotency-Key``. Partners check the signature
with :func:`verify` (or its equivalent in their language) and drop repeated keys,
which is why an uncertain attempt is simply resent (``on_unknown = "resend"``).

Every webhook channel of a run posts through one shared ``aiohttp.ClientSession``,
each request with its own channel's timeout. In a dry-run that session is a
:class:`~broadcaster.channels.recording.RecordingSession` answering ``200 {"id"}``.

Redirects are never followed: a partner endpoint that moves must be reviewed by
a person, not silently trusted with crisis traffic.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit, urlunsplit

import orjson

from broadcaster.channels.base import AlertDocument, Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.http import (
    answer_error,
    close_session,
    connection_failure,
    open_session,
    reply_id,
    snippet,
    status_error,
)
from broadcaster.channels.recording import RecordedResponse, RecordingSession
from broadcaster.config import ChannelConfig, KindOptions, KindTable
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, scrub
from broadcaster.templates.render import Forms, Rendered

__all__ = [
    "MAX_AGE_S",
    "WebhookChannel",
    "WebhookOptions",
    "classify_webhook",
    "sign",
    "target_url",
    "verify",
]

log = logging.getLogger(__name__)

MAX_AGE_S: Final = 300.0
"""How old (or how far in the future) a signed timestamp may be before verify refuses it."""
WEBHOOK_LIMIT_BYTES: Final = 64 * 1024

_SIGNATURE_PREFIX: Final = "sha256="
_MAX_RESPONSE_BYTES: Final = 64 * 1024  # enough for an {"id": ...}; never buffer a partner's page


@dataclass(frozen=True, kw_only=True)
class WebhookOptions(KindOptions):
    """The partner's ``url`` and the NAME of the variable holding the shared HMAC secret."""

    url: str
    secret_env: str


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Broadcaster-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return _SIGNATURE_PREFIX + digest


def verify(
    secret: bytes,
    timestamp: int | str,
    body: bytes,
    signature: str,
    *,
    max_age_s: float = MAX_AGE_S,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is ours for ``body`` and ``timestamp`` is within ``max_age_s`` of now.

    The comparison is constant-time. The age window (both directions) stops a
    captured request from being replayed later.
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > max_age_s:
        return False
    expected = sign(secret, ts, body).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape"))


def classify_webhook(
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    exc: BaseException | None = None,
    secrets: tuple[Secret, ...] = (),
) -> Receipt | DeliveryError:
    """Map one webhook outcome (a response status, or the exception raised) into our terms.

    ==========================  ===============  =========  ==========
    outcome                     reason           retryable  sent_maybe
    ==========================  ===============  =========  ==========
    2xx                         (a Receipt; provider id from JSON ``id``)
    3xx (never followed)        BAD_REQUEST      no         no
    429                         RATE_LIMITED     yes        no
    408                         TIMEOUT          yes        no
    500, 502, 504               SERVER           yes        yes
    other 5xx (503 ...)         SERVER           yes        no
    401, 403                    AUTH             no         no
    other 4xx                   BAD_REQUEST      no         no
    an invalid url              BAD_REQUEST      no         no
    connection failures         see ``channels.http.connection_failure``
    ==========================  ===============  =========  ==========

    ``retry_after`` comes from a ``Retry-After`` header on any retryable status.
    """
    if exc is not None:
        return _classify_exception(exc, secrets)
    if status is None:
        raise ValueError("classify_webhook needs a status or an exception")
    headers = headers or {}
    if 200 <= status < 300:
        return Receipt(provider_id=reply_id(body), http_status=status)
    detail = scrub(snippet(body), secrets)
    if 300 <= status < 400:
        location = scrub(str(headers.get("Location", "?")), secrets)
        return answer_error("webhook", status, headers, detail, Reason.BAD_REQUEST,
                            f"partner endpoint redirects to {location}; not followed, review the channel url",
                            retryable=False)
    return status_error("webhook", status, headers, detail, _PARTNER_SAYS)


_PARTNER_SAYS: Final = {
    Reason.RATE_LIMITED: "rate limited by partner",
    Reason.TIMEOUT: "partner timed out reading the request",
    Reason.SERVER: "partner server error",  # 500 and gateway errors may come after the partner acted on the body
    Reason.AUTH: "partner refused our signature or credentials",
    Reason.BAD_REQUEST: "partner rejected the request",
}


def _classify_exception(exc: BaseException, secrets: tuple[Secret, ...]) -> DeliveryError:
    import aiohttp

    if isinstance(exc, aiohttp.InvalidURL):  # a ClientError, but no retry can mend it
        what = scrub(f"{type(exc).__name__}: {exc}", secrets)
        return DeliveryError(Reason.BAD_REQUEST, f"webhook url is invalid: {what}", retryable=False)
    error = connection_failure(exc, "webhook", secrets)
    if error is None:
        raise TypeError(f"classify_webhook cannot map {type(exc).__name__}") from exc
    return error


def target_url(url: str, api_base: str | None) -> str:
    """``url`` with its scheme and host replaced by ``api_base`` (tests, proxies), path kept."""
    if not api_base:
        return url
    parts, base = urlsplit(url), urlsplit(api_base)
    path = base.path.rstrip("/") + parts.path
    return urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


class WebhookChannel(Channel):
    """POSTs each delivery's JSON ``payload`` to the partner, signed and keyed for dedup.

    After an unknown outcome it resends (the default ``on_unknown``): the
    Idempotency-Key lets the partner drop the duplicate.
    """

    kind = "webhook"
    can_reconcile = False
    default_rate_per_second: ClassVar[float] = 10.0
    sample: ClassVar[Mapping[str, Any]] = {"url": "https://partner.example/alerts", "secret_env": "PARTNER_HOOK_SECRET"}

    @classmethod
    def parse_options(cls, table: Mapping[str, Any], *, where: str, base_dir: Path) -> WebhookOptions:
        keys = KindTable(table, kind=cls.kind, where=where, keys={"url": True, "secret_env": True})
        return WebhookOptions(url=keys.http_url("url"), secret_env=keys.env("secret_env"))

    @classmethod
    def render(cls, forms: Forms, config: ChannelConfig) -> list[Rendered]:
        # The body is JSON built by ``payload`` around these texts; they are measured as the long forms.
        languages = config.languages
        text = "\n\n".join(forms[lang]["long"] for lang in languages)
        return [Rendered("+".join(languages), text, len(text.encode("utf-8")), WEBHOOK_LIMIT_BYTES, "bytes")]

    @classmethod
    def measure_piece(cls, text: str) -> int:
        return len(text.encode("utf-8"))

    @classmethod
    def payload(cls, document: AlertDocument, rendered: Rendered, config: ChannelConfig) -> bytes:
        """The JSON body partners receive: both languages, CAP fields, areas, identifiers."""
        body = {
            "alert_id": document.alert_id,
            "identifier": document.identifier,
            "sender": document.sender,
            "sent": document.sent,
            "expires": document.expires,
            "status": document.status,
            "msgType": document.msg_type,
            "references": document.references,
            "template": document.template,
            "cap": dict(document.cap),
            "event": dict(document.event),
            "areas": list(document.areas),
            "info": [{"language": lang, **document.forms[lang]} for lang in ("ar", "en")],
        }
        return orjson.dumps(body)

    def __init__(self, config: ChannelConfig, clients: Clients, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, clients)
        self.options = config.options_of(WebhookOptions)
        self._clock = clock
        self._secret: Secret | None = None
        self._session: Any = None
        self._timeout: Any = None
        self.url = target_url(self.options.url, self.config.api_base)

    async def open(self) -> None:
        if self._session is not None:
            return
        import aiohttp

        self._session = await self.clients.shared("webhook", self._make_session, close_session)
        self._timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        self._secret = self.secret("secret_env")

    async def _make_session(self) -> Any:
        if self.clients.recording:
            return RecordingSession(self.clients, "webhook", _recorded_answer)
        # No shared cap on connections: webhooks go to many partners, and a cap would let a few
        # hanging partners starve the rest. The dispatcher bounds each channel's requests in flight.
        return await open_session(self.clients, limit=0)

    async def close(self) -> None:
        self._session = self._secret = None  # the session is shared: Clients closes it with the run
        await super().close()

    async def send(self, message: OutboundMessage) -> Receipt:
        if self._session is None or self._secret is None:
            raise RuntimeError("use the channel inside 'async with' before sending")
        if message.payload is None:
            raise DeliveryError(Reason.BAD_REQUEST, "webhook delivery has no payload", retryable=False)
        body = message.payload
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            "X-Broadcaster-Timestamp": str(timestamp),
            "X-Broadcaster-Signature": sign(self._secret.reveal().encode(), timestamp, body),
            "Idempotency-Key": message.idempotency_key,
        }
        secrets = self.secrets()
        try:
            post = self._session.post(self.url, data=body, headers=headers, allow_redirects=False,
                                      timeout=self._timeout)
            async with post as resp:
                answer = await resp.content.read(_MAX_RESPONSE_BYTES)
                outcome = classify_webhook(resp.status, resp.headers, answer, secrets=secrets)
        except _failures() as exc:
            outcome = classify_webhook(exc=exc, secrets=secrets)
        log.debug("webhook %s delivery %s -> %s", self.id, message.idempotency_key, _describe(outcome))
        if isinstance(outcome, DeliveryError):
            raise outcome
        return self.receipt(outcome.provider_id, outcome.http_status)


@functools.cache
def _failures() -> tuple[type[BaseException], ...]:
    """What a POST may raise for partner or network trouble (anything else is a bug)."""
    import aiohttp

    return (aiohttp.ClientError, TimeoutError, OSError)


def _recorded_answer(number: int, method: str, url: str, request: Mapping[str, Any]) -> RecordedResponse:
    """A partner's answer in a dry-run: ``200 {"id": ...}``, as :func:`~broadcaster.channels.http.reply_id` reads it."""
    return RecordedResponse(200, {"id": f"evt_{number}"})


def _describe(outcome: Receipt | DeliveryError) -> str:
    if isinstance(outcome, Receipt):
        return f"HTTP {outcome.http_status}"
    return f"{outcome.reason.value} (HTTP {outcome.http_status})"
