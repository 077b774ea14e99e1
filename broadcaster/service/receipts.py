"""Twilio delivery receipts: ``POST /twilio/status``.

Twilio signs each status callback with the account's auth token over the URL
it called plus the sorted form fields (``X-Twilio-Signature``). The URL is the
configured ``public_url`` plus the path, never the Host header, which a client
controls. Anything that does not validate with the SDK's ``RequestValidator``
gets 403 and changes nothing.

A valid receipt is stored once per ``(MessageSid, MessageStatus)``: a replayed
callback is accepted (204) and ignored. ``delivered``/``read`` make a sent SMS
``delivered``; ``undelivered``/``failed`` make it ``undelivered``. The engine's
own delivery state stays ``sent`` (follow-ups and reports read it); the API
shows the receipt on top of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Final

from aiohttp import web
from twilio.request_validator import RequestValidator

from broadcaster.app.context import CALLBACK_PATH
from broadcaster.channels.twilio_api import TwilioOptions
from broadcaster.config import Config
from broadcaster.service.state import SERVICE

log = logging.getLogger("broadcaster.service.receipts")

__all__ = ["CALLBACK_PATH", "handle_status", "signature_ok"]
_SID: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def auth_tokens(config: Config, account_sid: str) -> list[str]:
    """Auth tokens of the Twilio channels (SMS, WhatsApp) that send from ``account_sid`` (read from the environment)."""
    tokens: list[str] = []
    for channel in config.channels:
        if not isinstance(channel.options, TwilioOptions):
            continue
        sid_env, token_env = channel.options.account_sid_env, channel.options.auth_token_env
        if os.environ.get(sid_env) == account_sid and os.environ.get(token_env):
            tokens.append(os.environ[token_env])
    return list(dict.fromkeys(tokens))


def signature_ok(config: Config, request_path_qs: str, form: dict[str, str], signature: str | None) -> bool:
    if not signature or not config.public_url:
        return False
    url = config.public_url.rstrip("/") + request_path_qs
    return any(RequestValidator(token).validate(url, form, signature)
               for token in auth_tokens(config, form.get("AccountSid", "")))


def _clean(form: Iterable[tuple[str, object]]) -> dict[str, str]:
    return {k: v for k, v in form if isinstance(v, str)}


async def handle_status(request: web.Request) -> web.Response:
    """Validate, then record a Twilio status callback. 403 unless signed; 204 otherwise."""
    service = request.app[SERVICE]
    form = _clean((await request.post()).items())
    signature = request.headers.get("X-Twilio-Signature")
    if not signature_ok(service.config, request.rel_url.path_qs, form, signature):
        service.metrics.receipts.labels(outcome="forged").inc()
        log.warning("refused a status callback that does not carry a valid Twilio signature")
        return web.json_response({"error": "forbidden", "message": "X-Twilio-Signature does not validate"},
                                 status=403)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not sid or not set(sid) <= _SID or not status.isalpha():
        return web.json_response({"error": "invalid", "message": "MessageSid and MessageStatus are required"},
                                 status=400)
    new = await service.app.store.receipts.record(sid, status, form.get("ErrorCode") or None,
                                                  now=service.clock.now())
    service.metrics.receipts.labels(outcome=status if new else "replayed").inc()
    return web.Response(status=204)
