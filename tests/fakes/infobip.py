"""A fake Infobip SMS API on 127.0.0.1 that the real ``infobip-api-python-client`` SDK can talk to.

Routes (every request needs ``Authorization: App {api_key}``, else 401 ``E401``):

* ``POST /sms/3/messages``: ``{"messages": [{"sender", "destinations": [{"to", "messageId"}],
  "content": {"text"}}]}`` -> 200 ``{"bulkId", "messages": [{"messageId", "status", "destination"}]}``,
  each destination ``PENDING_ACCEPTED``; a message without text or destinations is 400 ``E400``
  with ``violations``, as Infobip answers.
* ``GET /sms/3/logs``: ``messageId``, ``bulkId``, ``destination``, ``sender`` filters
  (repeated or comma-separated), ``sentSince``, ``limit`` (default 50, at most 1000),
  newest first -> ``{"results": [...]}``.

A message is stored in :attr:`FakeInfobip.messages` the moment its request body is
fully read, before latency or a scripted step applies. Scripted steps
(:func:`infobip_error`, :func:`hang`, :func:`refused`) answer instead of the normal
reply; a step with ``accept=True`` first stores the message (its answer is then lost).
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, Recorded, Step

MAX_LIMIT = 1000
PENDING = {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED",
           "description": "Message sent to next instance"}


def infobip_error(status: int, error_code: str | None = None, description: str = "scripted failure", *,
                  retry_after: float | str | None = None, accept: bool = False, hang: float = 0.0,
                  legacy: bool = False) -> Step:
    """A scripted Infobip error: the current ``{errorCode, description, ...}`` body, or the older
    ``{requestError: {serviceException: {messageId, text}}}`` one (``legacy``)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    code = error_code or f"E{status}"
    body: dict[str, Any] = (
        {"requestError": {"serviceException": {"messageId": code, "text": description}}} if legacy
        else {"errorCode": code, "description": description, "action": "Check the request.", "violations": [],
              "resources": []})
    return Step(status=status, body=body, headers=headers, accept=accept, hang=hang)


def hang(seconds: float = 30.0, *, accept: bool = False) -> Step:
    """Answer nothing for ``seconds`` (past the client's timeout); ``accept`` stores the message first."""
    return Step(status=200, hang=seconds, accept=accept)


def refused(name: str = "REJECTED_DESTINATION", group: str = "REJECTED") -> Step:
    """A 200 whose one message Infobip refused (its status group ``REJECTED`` or ``UNDELIVERABLE``)."""

    def body(request: Recorded) -> dict[str, Any]:
        destinations = [d for m in request.json["messages"] for d in m["destinations"]]
        return {"bulkId": "bulk-refused", "messages": [
            {"messageId": d.get("messageId"), "destination": d["to"],
             "status": {"groupId": 5, "groupName": group, "id": 51, "name": name, "description": "scripted"}}
            for d in destinations]}

    return Step(status=200, body=body)


class FakeInfobip(FakeServer):
    """Scriptable Infobip. ``messages`` holds accepted messages as dicts, oldest first.

    Each dict has ``messageId``, ``bulkId``, ``to``, ``from``, ``text``, ``sentAt``
    (aware UTC) and ``seq``. ``clock`` gives the server's "now"; defaults to the real clock.
    """

    def __init__(self, *, api_key: str, latency: float = 0.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(latency=latency)
        self.api_key = api_key
        self.clock = clock or (lambda: datetime.now(UTC))
        self.messages: list[dict[str, Any]] = []
        self._by_to: dict[str, list[dict[str, Any]]] = {}
        self._seq = itertools.count(1)
        self.app.router.add_post("/sms/3/messages", self._send)
        self.app.router.add_get("/sms/3/logs", self._logs)

    def messages_to(self, to: str) -> list[dict[str, Any]]:
        return list(self._by_to.get(to, ()))

    @property
    def posts(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST")

    def _denied(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"App {self.api_key}":
            return None
        return web.json_response({"errorCode": "E401", "description": "Invalid login details",
                                  "action": "Check the API key.", "violations": [], "resources": []}, status=401)

    async def _send(self, request: web.Request) -> web.StreamResponse:
        rec = await self.record(request)  # the body is fully read here
        denied = self._denied(request)
        if denied is not None:
            return denied
        step = self.next_step(rec)
        stored: list[dict[str, Any]] = []
        if step is None or step.accept:
            invalid = _violations(rec.json)
            if invalid:
                return web.json_response({"errorCode": "E400", "description": "Request cannot be processed.",
                                          "action": "Check the syntax, violations and adjust the request.",
                                          "violations": invalid, "resources": []}, status=400)
            stored = self._store(rec.json)
        await self.provider_latency()
        if step is None or (step.accept and 200 <= step.status < 300 and step.body is None):
            if step is not None:
                await self.hold(step.hang)
            bulk = stored[0]["bulkId"] if stored else None
            return web.json_response({"bulkId": bulk, "messages": [
                {"messageId": m["messageId"], "status": PENDING, "destination": m["to"]} for m in stored]})
        return await self.answer(step)

    def _store(self, body: Any) -> list[dict[str, Any]]:
        bulk = "bulk-" + secrets.token_hex(6)
        stored = []
        for message in body["messages"]:
            for destination in message["destinations"]:
                entry = {"messageId": destination.get("messageId") or secrets.token_hex(10), "bulkId": bulk,
                         "to": destination["to"], "from": message.get("sender"),
                         "text": message["content"]["text"], "sentAt": self.clock(), "seq": next(self._seq)}
                self.messages.append(entry)
                self._by_to.setdefault(entry["to"], []).append(entry)
                stored.append(entry)
        return stored

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        denied = self._denied(request)
        if denied is not None:
            return denied
        step = self.next_step()
        if step is not None:
            return await self.answer(step)
        await self.provider_latency()
        query = request.query

        def wanted(name: str) -> set[str] | None:
            values = [part for value in query.getall(name, []) for part in value.split(",") if part]
            return set(values) if values else None

        try:
            limit = min(int(query.get("limit", "50")), MAX_LIMIT)
            since = datetime.fromisoformat(query["sentSince"]) if "sentSince" in query else None
        except ValueError as exc:
            return web.json_response({"errorCode": "E400", "description": f"Invalid parameter: {exc}",
                                      "action": "", "violations": [], "resources": []}, status=400)
        filters = {"messageId": wanted("messageId"), "bulkId": wanted("bulkId"), "to": wanted("destination"),
                   "from": wanted("sender")}
        matches = [m for m in reversed(self.messages)
                   if all(values is None or m[key] in values for key, values in filters.items())
                   and (since is None or m["sentAt"] >= since)]
        return web.json_response({"results": [_log(m) for m in matches[:limit]], "cursor": {"limit": limit}})


def _log(message: dict[str, Any]) -> dict[str, Any]:
    sent = message["sentAt"].strftime("%Y-%m-%dT%H:%M:%S.") + f"{message['sentAt'].microsecond // 1000:03d}+0000"
    return {"sender": message["from"], "destination": message["to"], "bulkId": message["bulkId"],
            "messageId": message["messageId"], "sentAt": sent, "doneAt": sent, "messageCount": 1,
            "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET",
                       "description": "Message delivered to handset"},
            "content": {"text": message["text"]}}


def _violations(body: Any) -> list[dict[str, str]]:
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        return [{"property": "messages", "violation": "must not be empty"}]
    found = []
    for i, message in enumerate(body["messages"]):
        if not message.get("destinations"):
            found.append({"property": f"messages[{i}].destinations", "violation": "must not be empty"})
        if not (message.get("content") or {}).get("text"):
            found.append({"property": f"messages[{i}].content.text", "violation": "must not be blank"})
        for j, destination in enumerate(message.get("destinations") or []):
            if not str(destination.get("to", "")).lstrip("+").isdigit():
                found.append({"property": f"messages[{i}].destinations[{j}].to", "violation": "invalid number"})
    return found
