"""A fake Telegram Bot API: ``POST /bot{token}/{method}``, answering like api.telegram.org.

Usage::

    async with FakeTelegram(token="123456:SECRET-TOKEN-VALUE") as fake:
        fake.script(FakeTelegram.retry_after(3))          # the next call gets a 429
        ... point a channel's api_base at fake.base_url ...
        assert fake.sent[0]["text"] == "..."

Unscripted, ``sendMessage`` accepts the message, records it in :attr:`sent` and
answers with a Message; ``getMe`` answers with the bot. A scripted step answers
instead; with ``accept=True`` the message is recorded first (it "went out") and the
step's answer follows, so a hang with ``accept=True`` models a timeout after delivery.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import FakeServer, Recorded, Step, multipart_fields


class FakeTelegram(FakeServer):
    """The Bot API for one or more bots.

    ``token``: when set, any other token gets 401 Unauthorized, as Telegram answers.
    ``chats``: when set, a ``chat_id`` outside it gets 400 "chat not found".
    ``latency``: seconds to wait before every answer.
    """

    def __init__(
        self, *, token: str | None = None, chats: Iterable[str] | None = None, latency: float = 0.0
    ) -> None:
        super().__init__(latency=latency)
        self.token = token
        self.chats = set(chats) if chats is not None else None
        self.sent: list[dict[str, Any]] = []
        self._next_message_id = 1
        self.app.router.add_route("*", "/bot{token}/{method}", self._handle)

    # -- scripted answers ---------------------------------------------------------

    @staticmethod
    def error(status: int, description: str, **parameters: Any) -> Step:
        """Any Bot API error answer: ``{"ok": false, "error_code", "description"}``."""
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return Step(status, body)

    @staticmethod
    def echo_url() -> Step:
        """A 400 whose description echoes the request path, ``/bot<token>/sendMessage`` (PTB lower-cases it)."""

        def body(request: Recorded) -> dict[str, Any]:
            return {"ok": False, "error_code": 400, "description": f"Bad Request: no such method {request.path}"}

        return Step(400, body)

    @staticmethod
    def retry_after(seconds: int) -> Step:
        """429 flood control with ``parameters.retry_after``."""
        return FakeTelegram.error(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)

    @staticmethod
    def chat_not_found() -> Step:
        return FakeTelegram.error(400, "Bad Request: chat not found")

    @staticmethod
    def bad_request(description: str = "Bad Request: message is too long") -> Step:
        return FakeTelegram.error(400, description)

    @staticmethod
    def bot_kicked() -> Step:
        return FakeTelegram.error(403, "Forbidden: bot was kicked from the channel chat")

    @staticmethod
    def unauthorized() -> Step:
        return FakeTelegram.error(401, "Unauthorized")

    @staticmethod
    def bad_gateway() -> Step:
        """502 as Telegram's nginx front end sends it: an HTML page, not JSON."""
        return Step(502, "<html><head><title>502 Bad Gateway</title></head></html>")

    @staticmethod
    def server_error(status: int = 500, description: str = "Internal Server Error") -> Step:
        return FakeTelegram.error(status, description)

    @staticmethod
    def hang(seconds: float, *, accept: bool = True) -> Step:
        """Wait ``seconds`` before answering; ``accept`` records the message first."""
        return Step(200, None, hang=seconds, accept=accept)

    # -- serving ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        params = _params(recorded, multipart_fields(request, recorded))
        method = request.match_info["method"]
        await self.provider_latency()
        step = self.next_step(recorded)
        if step is not None:
            result = self._accept(params) if step.accept and method in ("sendMessage", "sendPhoto") else None
            if step.body is None and result is not None:
                step = Step(step.status, {"ok": True, "result": result}, step.headers, step.hang)
            return await self.answer(step)
        if self.token is not None and request.match_info["token"] != self.token:
            return await self.answer(self.unauthorized())
        if method == "getMe":
            return await self.answer(Step(200, {"ok": True, "result": self._bot_user(request)}))
        if method == "sendMessage":
            if "chat_id" not in params or not params.get("text"):
                return await self.answer(self.bad_request("Bad Request: message text is empty"))
            if self.chats is not None and str(params["chat_id"]) not in self.chats:
                return await self.answer(self.chat_not_found())
            return await self.answer(Step(200, {"ok": True, "result": self._accept(params)}))
        if method == "sendPhoto":
            if "chat_id" not in params or not isinstance(params.get("photo"), bytes):
                return await self.answer(self.bad_request("Bad Request: there is no photo in the request"))
            if len(str(params.get("caption", ""))) > 1024:
                return await self.answer(self.bad_request("Bad Request: message caption is too long"))
            return await self.answer(Step(200, {"ok": True, "result": self._accept(params)}))
        return await self.answer(self.error(404, "Not Found"))

    def _accept(self, params: dict[str, Any]) -> dict[str, Any]:
        message_id = self._next_message_id
        self._next_message_id += 1
        reply = params.get("reply_parameters")
        reply_to = reply.get("message_id") if isinstance(reply, dict) else params.get("reply_to_message_id")
        preview = params.get("link_preview_options")
        sent = {
            "chat_id": str(params.get("chat_id")),
            "text": params.get("text"),
            "parse_mode": params.get("parse_mode"),
            "reply_to_message_id": int(reply_to) if reply_to is not None else None,
            "link_preview_disabled": isinstance(preview, dict) and bool(preview.get("is_disabled")),
            "message_id": message_id,
        }
        answer = {"message_id": message_id, "date": int(time.time()), "chat": _chat(str(params.get("chat_id"))),
                  "text": params.get("text")}
        if isinstance(params.get("photo"), bytes):  # sendPhoto: the card, the text as its caption
            sent.update(photo=params["photo"], caption=params.get("caption"))
            answer = {**answer, "caption": params.get("caption"), "text": None,
                      "photo": [{"file_id": f"photo-{message_id}", "file_unique_id": f"p{message_id}",
                                 "width": 1080, "height": 1080}]}
            del answer["text"]
        self.sent.append(sent)
        return answer

    @staticmethod
    def _bot_user(request: web.Request) -> dict[str, Any]:
        prefix = request.match_info["token"].split(":", 1)[0]
        bot_id = int(prefix) if prefix.isdigit() else 1
        return {"id": bot_id, "is_bot": True, "first_name": "Alerts", "username": "alerts_bot"}


def _params(recorded: Recorded, files: dict[str, Any]) -> dict[str, Any]:
    """Parameters from the query, a form, a multipart body or a JSON body, with nested JSON decoded."""
    raw: dict[str, Any] = dict(recorded.query)
    raw.update(recorded.form)
    raw.update(files)
    if isinstance(recorded.json, dict):
        raw.update(recorded.json)
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value[:1] in ("{", "["):
            with contextlib.suppress(orjson.JSONDecodeError):
                value = orjson.loads(value)
        params[key] = value
    return params


def _chat(chat_id: str) -> dict[str, Any]:
    """A channel chat: numeric ids as given, ``@usernames`` get a stable fake id."""
    if chat_id.lstrip("-").isdigit():
        return {"id": int(chat_id), "type": "channel", "title": "Alerts"}
    username = chat_id.lstrip("@")
    return {
        "id": -1_000_000_000_000 - zlib.crc32(username.encode()),
        "type": "channel",
        "title": username,
        "username": username,
    }
