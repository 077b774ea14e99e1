"""Infobip's answers in the project's one error taxonomy (the ``sms`` kind with ``provider = "infobip"``).

Infobip says "no" in two places. An HTTP error carries a body in one of two shapes:
the current one (``{"errorCode": "E401", "description": ..., "violations": [...]}``)
or the older ``{"requestError": {"serviceException": {"messageId": "UNAUTHORIZED",
"text": ...}}}``; both are read. And an HTTP 200 may still refuse one destination:
each message of the answer has a ``status`` whose ``groupName`` is ``PENDING`` when
accepted, ``REJECTED`` or ``UNDELIVERABLE`` when not (its ``name`` says why, e.g.
``REJECTED_DESTINATION``, ``REJECTED_NOT_ENOUGH_CREDITS``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, scrub

__all__ = ["ACCEPTED_GROUPS", "classify_infobip", "classify_status", "connection_error"]

PROVIDER: Final = "infobip"
# A message in one of these status groups was taken in (queued, on its way, or already delivered).
ACCEPTED_GROUPS: Final = frozenset({"ACCEPTED", "PENDING", "DELIVERED"})
# Status names (group REJECTED or UNDELIVERABLE) that are about the phone, not the sender or the account.
_RECIPIENT_NAMES: Final = ("DESTINATION", "NETWORK", "PREFIX", "UNDELIVERABLE", "BLOCKED", "DND", "OPTED")
_AUTH_IDS: Final = frozenset({"UNAUTHORIZED", "E401", "FORBIDDEN", "E403"})
_RATE_IDS: Final = frozenset({"TOO_MANY_REQUESTS", "E429"})
# Statuses after which Infobip may already have taken the message in.
_MAYBE_SENT_STATUSES: Final = frozenset({500, 502, 504})


def classify_infobip(status: int, body: str | None, headers: Mapping[str, str] | None,
                     secrets: tuple[Secret, ...] = ()) -> DeliveryError:
    """Map one failed HTTP answer of Infobip's API into a DeliveryError.

    ===================================  ==============  =========  ==========
    answer                               reason          retryable  sent_maybe
    ===================================  ==============  =========  ==========
    HTTP 429 (``TOO_MANY_REQUESTS``)     RATE_LIMITED    yes        no
    HTTP 401, 403                        AUTH            no         no
    HTTP 500, 502, 504                   SERVER          yes        yes
    other 5xx (503 ...)                  SERVER          yes        no
    other 4xx                            BAD_REQUEST     no         no
    ===================================  ==============  =========  ==========

    ``Retry-After`` (seconds or an HTTP date) becomes ``retry_after``. The
    provider's own id (``errorCode`` or ``messageId``) is the error's ``provider_code``.
    """
    from broadcaster.channels.http import parse_retry_after

    code, text = _error_of(body)
    message = scrub(f"{PROVIDER} HTTP {status}" + (f" {code}" if code else "") + (f": {text}" if text else ""),
                    secrets)

    def error(reason: Reason, *, retryable: bool, sent_maybe: bool = False) -> DeliveryError:
        retry_after = parse_retry_after(_header(headers, "Retry-After")) if retryable else None
        return DeliveryError(reason, message, retryable=retryable, retry_after=retry_after, http_status=status,
                             provider_code=code, sent_maybe=sent_maybe)

    if status == 429 or code in _RATE_IDS:
        return error(Reason.RATE_LIMITED, retryable=True)
    if status in (401, 403) or code in _AUTH_IDS:
        return error(Reason.AUTH, retryable=False)
    if status >= 500:
        return error(Reason.SERVER, retryable=True, sent_maybe=status in _MAYBE_SENT_STATUSES)
    return error(Reason.BAD_REQUEST, retryable=False)


def classify_status(group: str | None, name: str | None, description: str | None, *,
                    http_status: int) -> DeliveryError | None:
    """None when a message's status in a 2xx answer says Infobip took it in; else why not (never retried).

    ``REJECTED`` or ``UNDELIVERABLE`` about the phone (``REJECTED_DESTINATION``,
    ``REJECTED_NETWORK``, ``REJECTED_PREFIX_MISSING`` ...) is RECIPIENT_GONE; any
    other refusal (credits, sender, content) is BAD_REQUEST, about the channel.
    A status Infobip did not fill in at all is read as unknown: it may have gone out.
    """
    if group in ACCEPTED_GROUPS:
        return None
    words = f"{PROVIDER} refused the message: {name or group}" + (f" ({description})" if description else "")
    if group is None:
        return DeliveryError(Reason.SERVER, f"{PROVIDER} answered without a status for the message",
                             retryable=True, sent_maybe=True, http_status=http_status)
    about_phone = group == "UNDELIVERABLE" or any(part in (name or "") for part in _RECIPIENT_NAMES)
    return DeliveryError(Reason.RECIPIENT_GONE if about_phone else Reason.BAD_REQUEST, words, retryable=False,
                         http_status=http_status, provider_code=name or group)


def connection_error(exc: BaseException, secrets: tuple[Secret, ...]) -> DeliveryError | None:
    """A urllib3 connection failure (the SDK's transport), or None for anything else.

    ======================  =======  =========  ==========
    failure                 reason   retryable  sent_maybe
    ======================  =======  =========  ==========
    connect timeout         TIMEOUT  yes        no
    read timeout            TIMEOUT  yes        yes
    refused, DNS            NETWORK  yes        no
    dropped after sending   NETWORK  yes        yes
    ======================  =======  =========  ==========
    """
    from urllib3 import exceptions as u3

    what = scrub(f"{type(exc).__name__}: {exc}", secrets)
    if isinstance(exc, u3.MaxRetryError) and exc.reason is not None:
        return connection_error(exc.reason, secrets)
    # Order matters: urllib3's NewConnectionError (refused, DNS) is also a ConnectTimeoutError.
    if isinstance(exc, u3.NewConnectionError | ConnectionRefusedError):
        return DeliveryError(Reason.NETWORK, f"{PROVIDER} could not connect: {what}", retryable=True)
    if isinstance(exc, u3.ConnectTimeoutError):
        return DeliveryError(Reason.TIMEOUT, f"{PROVIDER} connect timeout: {what}", retryable=True)
    if isinstance(exc, u3.ReadTimeoutError | TimeoutError):
        return DeliveryError(Reason.TIMEOUT, f"{PROVIDER} did not answer in time: {what}", retryable=True,
                             sent_maybe=True)
    if isinstance(exc, u3.HTTPError | OSError):
        return DeliveryError(Reason.NETWORK, f"{PROVIDER} connection failed mid-request: {what}", retryable=True,
                             sent_maybe=True)
    return None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _error_of(body: str | None) -> tuple[str | None, str | None]:
    """``(errorCode or messageId, description or text)`` from an error body of either shape."""
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    if isinstance(parsed.get("errorCode"), str):
        text = parsed.get("description")
        violations = parsed.get("violations")
        if isinstance(violations, list) and violations:
            said = [f"{v.get('property')}: {v.get('violation')}" for v in violations if isinstance(v, dict)]
            text = f"{text} ({'; '.join(said)})" if said else text
        return parsed["errorCode"], text if isinstance(text, str) else None
    service = parsed.get("requestError", {})
    service = service.get("serviceException") if isinstance(service, dict) else None
    if isinstance(service, dict):
        message_id, text = service.get("messageId"), service.get("text")
        return (message_id if isinstance(message_id, str) else None), (text if isinstance(text, str) else None)
    return None, None
