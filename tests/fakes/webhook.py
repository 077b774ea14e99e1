"""A fake partner webhook endpoint on 127.0.0.1.

It accepts ``POST`` on any path, checks ``X-Broadcaster-Signature`` with the
shared secret *independently* of ``broadcaster.channels.webhook`` (so a bug in
our signing cannot hide behind the same bug in the check), and records each
delivery. Normal answer: ``200 {"id": "evt_N"}``. Scripted steps answer instead;
``Step(accept=True, ...)`` records the delivery first (a lost response).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer, Step


@dataclass
class Delivery:
    """One POST the partner accepted."""

    path: str
    json: Any
    headers: dict[str, str]
    idempotency_key: str | None
    timestamp: str | None
    signature_ok: bool
    event_id: str


def webhook_error(
    status: int, *, retry_after: float | str | None = None, location: str | None = None,
    accept: bool = False, hang: float = 0.0, body: Any = None,
) -> Step:
    """A scripted partner answer: any status, optional Retry-After or Location header."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if location is not None:
        headers["Location"] = location
    return Step(status=status, body=body if body is not None else {"error": "scripted"}, headers=headers,
                accept=accept, hang=hang)


class FakeWebhook(FakeServer):
    """Scriptable partner endpoint.

    ``secret`` is the shared HMAC key. ``reject_bad_signature=True`` answers 401
    to a request whose signature or timestamp fails (a strict partner); by default
    the delivery is recorded with ``signature_ok=False`` so tests can assert it.
    ``max_age_s`` is the partner's replay window.
    """

    def __init__(
        self,
        secret: bytes | str,
        *,
        latency: float = 0.0,
        reject_bad_signature: bool = False,
        max_age_s: float = 300.0,
    ) -> None:
        super().__init__(latency=latency)
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.reject_bad_signature = reject_bad_signature
        self.max_age_s = max_age_s
        self.deliveries: list[Delivery] = []
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    @property
    def keys(self) -> list[str | None]:
        """Idempotency keys of recorded deliveries, in arrival order (duplicates kept)."""
        return [d.idempotency_key for d in self.deliveries]

    def signature_ok(self, timestamp: str | None, body: bytes, signature: str | None) -> bool:
        if timestamp is None or signature is None or not timestamp.isdigit():
            return False
        if abs(time.time() - int(timestamp)) > self.max_age_s:
            return False
        mac = hmac.new(self.secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(("sha256=" + mac).encode(), signature.encode())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)  # the body is fully read here
        if request.method != "POST":
            return web.json_response({"error": "method not allowed"}, status=405)
        timestamp = request.headers.get("X-Broadcaster-Timestamp")
        ok = self.signature_ok(timestamp, rec.body, request.headers.get("X-Broadcaster-Signature"))
        if self.reject_bad_signature and not ok:
            return web.json_response({"error": "bad signature"}, status=401)
        step = self.next_step()
        delivery = None
        if step is None or step.accept:
            delivery = Delivery(
                path=request.path,
                json=rec.json if rec.json is not None else _loads(rec.body),
                headers=rec.headers,
                idempotency_key=request.headers.get("Idempotency-Key"),
                timestamp=timestamp,
                signature_ok=ok,
                event_id=f"evt_{len(self.deliveries) + 1}",
            )
            self.deliveries.append(delivery)
        await self.provider_latency()
        if step is None:
            assert delivery is not None
            return web.json_response({"id": delivery.event_id, "status": "accepted"})
        return await self.answer(step)


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
