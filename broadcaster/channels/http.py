"""What the kinds that speak HTTP through aiohttp share: the session, ``Retry-After``, connection failures.

A provider's own answers are mapped in its kind's ``classify_*``; the failures
here happen before there is an answer, and mean the same for every provider.
aiohttp is imported on first use, never when a kind module is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import orjson

from broadcaster.channels.base import POOL_SIZE, Clients
from broadcaster.channels.gate import trace_config
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, scrub

if TYPE_CHECKING:
    import aiohttp


async def open_session(
    clients: Clients, *, limit: int = POOL_SIZE, middlewares: Sequence[aiohttp.ClientMiddlewareType] = ()
) -> aiohttp.ClientSession:
    """A live aiohttp session on the run's one TLS context (a ``Clients.shared`` factory).

    No session-wide timeout: every request passes its own channel's. The session
    looks at the attempt's gate before each request is written (:mod:`broadcaster.channels.gate`).
    """
    import aiohttp

    connector = aiohttp.TCPConnector(ssl=clients.ssl_context(), limit=limit)
    return aiohttp.ClientSession(connector=connector, middlewares=middlewares, trace_configs=[trace_config()])


async def close_session(session: Any) -> None:
    """Close a shared session (a live one, or a recording stand-in) when the run ends."""
    await session.close()


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def connection_failure(exc: BaseException, provider: str, secrets: tuple[Secret, ...]) -> DeliveryError | None:
    """A failure of the connection itself, or None when ``exc`` is something else.

    ======================  =======  =========  ==========
    failure                 reason   retryable  sent_maybe
    ======================  =======  =========  ==========
    connect timeout         TIMEOUT  yes        no
    read timeout            TIMEOUT  yes        yes
    refused, DNS            NETWORK  yes        no
    dropped after sending   NETWORK  yes        yes
    ======================  =======  =========  ==========

    Order matters: ``ConnectionTimeoutError`` is a TimeoutError raised before any
    byte left, and ``ClientConnectorError`` a ClientError raised before any did.
    """
    import aiohttp

    what = scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), secrets)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return DeliveryError(Reason.TIMEOUT, f"{provider} connect timeout: {what}", retryable=True)
    if isinstance(exc, TimeoutError):
        return DeliveryError(Reason.TIMEOUT, f"{provider} did not answer in time: {what}", retryable=True,
                             sent_maybe=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return DeliveryError(Reason.NETWORK, f"{provider} could not connect: {what}", retryable=True)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return DeliveryError(Reason.NETWORK, f"{provider} connection failed mid-request: {what}", retryable=True,
                             sent_maybe=True)
    return None


def reply_id(body: bytes) -> str | None:
    """The ``id`` of a JSON object reply (a partner's or a platform's id for what it took), else None."""
    try:
        parsed = orjson.loads(body) if body.strip()[:1] == b"{" else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, dict):
        value = parsed.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def snippet(body: bytes, limit: int = 200) -> str:
    """The start of a reply's body on one line, for an error message (scrub it of secrets before use)."""
    return " ".join(body[:limit].decode("utf-8", "replace").split())


def answer_error(label: str, status: int, headers: Mapping[str, str], detail: str, reason: Reason, message: str, *,
                 retryable: bool, sent_maybe: bool = False) -> DeliveryError:
    """The error of one HTTP answer: ``"{label} HTTP {status}: {message} ({detail})"``, waiting its
    ``Retry-After`` when retryable. ``detail`` is the reply's start, already scrubbed of secrets."""
    return DeliveryError(
        reason, f"{label} HTTP {status}: {message}" + (f" ({detail})" if detail else ""), retryable=retryable,
        retry_after=parse_retry_after(headers.get("Retry-After")) if retryable else None,
        http_status=status, sent_maybe=sent_maybe,
    )


def status_error(label: str, status: int, headers: Mapping[str, str], detail: str,
                 messages: Mapping[Reason, str]) -> DeliveryError:
    """The one mapping of a plain HTTP error status, for the kinds that speak HTTP without an SDK (each puts
    its own special cases first, and words each reason in ``messages``).

    ==================  ============  =========  ==========
    status              reason        retryable  sent_maybe
    ==================  ============  =========  ==========
    429                 RATE_LIMITED  yes        no
    408                 TIMEOUT       yes        no
    500, 502, 504       SERVER        yes        yes (the server may have acted on the body)
    other 5xx (503 …)   SERVER        yes        no
    401, 403            AUTH          no         no
    other 3xx, 4xx      BAD_REQUEST   no         no
    ==================  ============  =========  ==========
    """
    retryable, sent_maybe = True, False
    if status == 429:
        reason = Reason.RATE_LIMITED
    elif status == 408:
        reason = Reason.TIMEOUT
    elif status >= 500:
        reason, sent_maybe = Reason.SERVER, status in (500, 502, 504)
    elif status in (401, 403):
        reason, retryable = Reason.AUTH, False
    else:
        reason, retryable = Reason.BAD_REQUEST, False
    return answer_error(label, status, headers, detail, reason, messages[reason], retryable=retryable,
                        sent_maybe=sent_maybe)
