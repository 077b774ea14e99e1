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

from broadcaster.channels.sms import SmsOptions
from broadcaster.config import Config
from broadcaster.store.sql import Database

log = logging.getLogger("broadcaster.service.receipts")

CALLBACK_PATH: Final = "/twilio/status"
FINAL: Final = {"delivered": "delivered", "read": "delivered", "undelivered": "undelivered", "failed": "undelivered"}
_SID: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


def callback_url(config: Config) -> str | None:
    """The StatusCallback URL SMS sends carry, when the service has a public URL."""
    return f"{config.public_url.rstrip('/')}{CALLBACK_PATH}" if config.public_url else None


def auth_tokens(config: Config, account_sid: str) -> list[str]:
    """Auth tokens of the SMS channels that send from ``account_sid`` (read from the environment)."""
    tokens: list[str] = []
    for channel in config.channels:
        if not isinstance(channel.options, SmsOptions):
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


class Receipts:
    """The ``receipts`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, message_sid: str, status: str, error_code: str | None, *, now: float) -> bool:
        """Store a receipt; False when this exact receipt was already recorded (a replay)."""
        cur = self.db.execute(
            "INSERT INTO receipts (message_sid, status, final, error_code, received_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT (message_sid, status) DO NOTHING",
            (message_sid, status, FINAL.get(status), error_code, now),
        )
        return cur.rowcount == 1

    def count(self, message_sid: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM receipts WHERE message_sid = ?", (message_sid,))
                   .fetchone()[0])

    def latest(self, alert_id: str) -> dict[str, tuple[str, str | None]]:
        """``provider id -> (latest status, final or None)`` for an alert's SMS deliveries."""
        latest: dict[str, tuple[str, str | None]] = {}
        rows = self.db.execute(
            "SELECT r.message_sid, r.status, r.final FROM receipts r"
            " JOIN deliveries d ON d.provider_id = r.message_sid WHERE d.alert_id = ? ORDER BY r.id",
            (alert_id,),
        )
        for sid, status, final in rows:
            previous = latest.get(sid)
            # A late interim status ("sent") never hides a final one ("delivered").
            if previous is None or final is not None or previous[1] is None:
                latest[sid] = (status, final)
        return latest

    def counts(self, alert_id: str) -> dict[str, dict[str, int]]:
        """``{channel: {state: n}}`` with sent deliveries shown as delivered/undelivered once receipted."""
        counts: dict[str, dict[str, int]] = {}
        rows = self.db.execute(
            """SELECT d.channel_id, d.state,
                      (SELECT r.final FROM receipts r WHERE r.message_sid = d.provider_id AND r.final IS NOT NULL
                       ORDER BY r.id DESC LIMIT 1),
                      COUNT(*)
               FROM deliveries d WHERE d.alert_id = ? GROUP BY 1, 2, 3""",
            (alert_id,),
        )
        for channel, state, final, n in rows:
            shown = final if state == "sent" and final else state
            slot = counts.setdefault(channel, {})
            slot[shown] = slot.get(shown, 0) + n
        return counts


def refined(state: str, receipt: tuple[str, str | None] | None) -> str:
    return receipt[1] if state == "sent" and receipt is not None and receipt[1] else state


def _clean(form: Iterable[tuple[str, object]]) -> dict[str, str]:
    return {k: v for k, v in form if isinstance(v, str)}


async def handle_status(request: web.Request) -> web.Response:
    """Validate, then record a Twilio status callback. 403 unless signed; 204 otherwise."""
    from broadcaster.service.state import SERVICE

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
    new = service.receipts.record(sid, status, form.get("ErrorCode") or None, now=service.clock.now())
    service.metrics.receipts.labels(outcome=status if new else "replayed").inc()
    return web.Response(status=204)
