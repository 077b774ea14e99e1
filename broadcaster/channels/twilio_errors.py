"""Twilio's answers in the project's one error taxonomy, for every Twilio kind (SMS and WhatsApp).

Most WhatsApp errors arrive later, in a status callback, as the ``ErrorCode`` of
a message Twilio first accepted; :func:`twilio_error_text` words those too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from broadcaster.channels.http import connection_failure, parse_retry_after
from broadcaster.errors import DeliveryError, Reason
from broadcaster.secret import Secret, scrub

__all__ = ["RECIPIENT_GONE_CODES", "classify_twilio", "twilio_error_text"]

RATE_LIMIT_CODES: Final = frozenset({
    20429,  # too many requests
    63018,  # WhatsApp: rate limit exceeded for the channel (the sender's messaging limit)
})
DAILY_LIMIT_CODE: Final = 63038  # the account's rolling 24-hour message limit
DAILY_LIMIT_PAUSE_S: Final = 900.0
AUTH_CODES: Final = frozenset({
    20003,  # authentication failed
    63001,  # WhatsApp: the channel could not authenticate the request
})
RECIPIENT_GONE_CODES: Final = frozenset({
    21211,  # invalid 'To' number
    21610,  # recipient replied STOP
    21612,  # 'To' not reachable by SMS from this sender
    21614,  # 'To' is not a mobile number
    63003,  # WhatsApp: the channel could not find the 'To' address (no WhatsApp account)
    63024,  # WhatsApp: invalid message recipient
    63032,  # WhatsApp: the user's number is part of an experiment (Meta does not deliver)
})
SENDER_CODES: Final = frozenset({
    21606,  # the 'From' number is not a valid, message-capable number for this account
    63007,  # WhatsApp: no channel with this 'From' address
    63020,  # WhatsApp: the business has not accepted Twilio's invitation
    63022,  # WhatsApp: invalid vname certificate
})
# Permanent answers about what was sent rather than who it went to; the message says which.
WHATSAPP_CONTENT_CODES: Final = {
    63016: "outside the 24-hour window: a business-initiated WhatsApp message must be a pre-approved template",
    63005: "the channel did not accept the content",
    63013: "the message breaks WhatsApp's policy",
    63021: "WhatsApp refused the content (a template and its values may be at most 1,024 characters)",
    63027: "the content SID names no approved template for this language",
    63028: "the template's placeholders do not match the ContentVariables sent",
    63030: "a parameter this WhatsApp message type does not support",
}
# Statuses after which the provider may already have acted on the POST.
_MAYBE_SENT_STATUSES: Final = frozenset({500, 502, 504})


def classify_twilio(
    exc: BaseException, *, headers: Mapping[str, str] | None = None, secrets: tuple[Secret, ...] = ()
) -> DeliveryError:
    """Map anything the Twilio SDK or aiohttp raised into one DeliveryError.

    ===================================  ==============  =========  ==========
    outcome                              reason          retryable  sent_maybe
    ===================================  ==============  =========  ==========
    HTTP 429, code 20429 or 63018        RATE_LIMITED    yes        no
    63038 (the account's daily limit)    RATE_LIMITED    yes (15 min)  no
    21211, 21610, 21612, 21614,          RECIPIENT_GONE  no         no
    63003, 63024, 63032
    HTTP 401, code 20003 or 63001        AUTH            no         no
    21606, 63007, 63020, 63022 (sender)  BAD_REQUEST     no         no
    63005, 63013, 63016, 63021, 63027,   BAD_REQUEST     no         no
    63028, 63030 (WhatsApp content)
    HTTP 500, 502, 504                   SERVER          yes        yes
    other 5xx (503 ...)                  SERVER          yes        no
    other 4xx                            BAD_REQUEST     no         no
    2xx with an unreadable body          SERVER          yes        yes
    connection failures                  see ``channels.http.connection_failure``
    ===================================  ==============  =========  ==========

    ``headers`` are the failed response's headers when known (the SDK's
    exceptions drop them); ``Retry-After`` there becomes ``retry_after``.
    ``TwilioServiceException`` (RFC 9457 bodies, recent 9.x), ``TwilioRestException``
    and the bare ``TwilioException`` that a failed list page raises are all handled.
    Anything else raises TypeError: it is not a provider answer but a bug.

    Most WhatsApp errors arrive later, in a status callback, as the ``ErrorCode``
    of a message Twilio first accepted; :func:`twilio_error_text` words those
    for the receipts.
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


def twilio_error_text(code: int | None) -> str | None:
    """Plain words for a Twilio error code of the taxonomy above, or None for a code it does not name."""
    if code in WHATSAPP_CONTENT_CODES:
        return WHATSAPP_CONTENT_CODES[code]
    if code in RATE_LIMIT_CODES:
        return "the sender's rate limit was exceeded"
    if code == DAILY_LIMIT_CODE:
        return "the account reached its 24-hour message limit; ask Twilio to raise it"
    if code in RECIPIENT_GONE_CODES:
        return "the recipient cannot receive messages from this sender"
    if code in AUTH_CODES:
        return "Twilio refused the credentials"
    if code in SENDER_CODES:
        return "the sender ('from' or the messaging service) cannot send on this channel"
    return None


def _from_status(
    status: int, code: int | None, text: str, headers: Mapping[str, str] | None, secrets: tuple[Secret, ...]
) -> DeliveryError:
    plain = twilio_error_text(code)
    message = scrub(f"twilio HTTP {status}" + (f" code {code}" if code else "") + f": {text}"
                    + (f" ({plain})" if plain else ""), secrets)

    def error(reason: Reason, *, retryable: bool, sent_maybe: bool = False,
              floor: float | None = None) -> DeliveryError:
        retry_after = parse_retry_after((headers or {}).get("Retry-After")) if retryable else None
        if floor is not None:
            retry_after = max(floor, retry_after or 0.0)
        return DeliveryError(reason, message, retryable=retryable, retry_after=retry_after, http_status=status,
                             provider_code=str(code) if code is not None else None, sent_maybe=sent_maybe)

    if status == 429 or code in RATE_LIMIT_CODES:
        return error(Reason.RATE_LIMITED, retryable=True)
    if code == DAILY_LIMIT_CODE:
        return error(Reason.RATE_LIMITED, retryable=True, floor=DAILY_LIMIT_PAUSE_S)
    if code in RECIPIENT_GONE_CODES:
        return error(Reason.RECIPIENT_GONE, retryable=False)
    if status == 401 or code in AUTH_CODES:
        return error(Reason.AUTH, retryable=False)
    if code in SENDER_CODES or code in WHATSAPP_CONTENT_CODES:
        return error(Reason.BAD_REQUEST, retryable=False)
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
