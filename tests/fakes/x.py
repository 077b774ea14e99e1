"""A fake X API v2: ``POST /2/tweets`` with a JSON body, answering like api.twitter.com.

Usage::

    async with FakeX() as fake:
        fake.script(FakeX.rate_limited(reset_at=1_700_000_060))
        ... point a channel's api_base at fake.base_url ...
        assert fake.tweets[0]["text"] == "..."

Unscripted, a post is accepted (201) and recorded in :attr:`tweets`, unless its text
equals an earlier accepted post's: then, like X, the answer is the duplicate-content
403. A request without an OAuth ``Authorization`` header gets 401. A scripted step
answers instead; with ``accept=True`` the tweet is recorded first (it "went out") and
the step's answer follows, so a hang with ``accept=True`` models a timeout after
the post was made.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, Step, multipart_fields

DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."


class FakeX(FakeServer):
    """The tweet-creation endpoint for one account.

    ``latency``: seconds to wait before every answer. ``first_id``: the id given to the
    first accepted tweet; later ones count up. ``prefix``: a path the API is served
    under, as behind a gateway (``api_base`` then ends with it).
    """

    def __init__(
        self, *, latency: float = 0.0, first_id: int = 1_800_000_000_000_000_000, prefix: str = ""
    ) -> None:
        super().__init__(latency=latency)
        self.tweets: list[dict[str, Any]] = []
        self.media: dict[str, bytes] = {}  # media id -> the uploaded image
        self._next_id = first_id
        self.app.router.add_post(f"{prefix.rstrip('/')}/2/tweets", self._create_tweet)
        self.app.router.add_post(f"{prefix.rstrip('/')}/2/media/upload", self._upload)

    # -- scripted answers ---------------------------------------------------------

    @staticmethod
    def problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra: Any) -> Step:
        """An RFC 7807 problem answer, the shape X API v2 uses for errors."""
        return Step(status, {"title": title, "detail": detail, "type": type_, "status": status, **extra})

    @staticmethod
    def rate_limited(*, reset_at: int, limit: int = 100) -> Step:
        """429 with ``x-rate-limit-reset`` = ``reset_at`` (epoch seconds)."""
        step = FakeX.problem(429, "Too Many Requests", "Too Many Requests")
        step.headers = {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset_at),
        }
        return step

    @staticmethod
    def unavailable() -> Step:
        return FakeX.problem(503, "Service Unavailable", "Service Unavailable")

    @staticmethod
    def unauthorized() -> Step:
        return FakeX.problem(401, "Unauthorized", "Unauthorized")

    @staticmethod
    def bad_request(message: str = "text: must not be empty") -> Step:
        return Step(
            400,
            {
                "errors": [{"parameters": {"text": [""]}, "message": message}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            },
        )

    @staticmethod
    def forbidden(detail: str = "You are not permitted to perform this action.") -> Step:
        return FakeX.problem(403, "Forbidden", detail)

    @staticmethod
    def duplicate() -> Step:
        return FakeX.problem(403, "Forbidden", DUPLICATE_DETAIL)

    @staticmethod
    def gateway_error(status: int = 503) -> Step:
        """A 5xx from a proxy in front of the API: HTML, not JSON."""
        return Step(status, f"<html><body><h1>{status} Service Unavailable</h1></body></html>")

    @staticmethod
    def hang(seconds: float, *, accept: bool = True) -> Step:
        """Wait ``seconds`` before answering; ``accept`` records the tweet first."""
        return Step(201, None, hang=seconds, accept=accept)

    # -- serving ------------------------------------------------------------------

    async def _create_tweet(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        body = recorded.json if isinstance(recorded.json, dict) else {}
        await self.provider_latency()
        step = self.next_step()
        if step is not None:
            data = self._accept(body) if step.accept else None
            if step.body is None and data is not None:
                step = Step(step.status, {"data": data}, step.headers, step.hang)
            return await self.answer(step)
        if not request.headers.get("Authorization", "").startswith("OAuth "):
            return await self.answer(self.unauthorized())
        if not isinstance(body.get("text"), str) or not body["text"]:
            return await self.answer(self.bad_request())
        if any(tweet["text"] == body["text"] for tweet in self.tweets):
            return await self.answer(self.duplicate())
        return await self.answer(Step(201, {"data": self._accept(body)}))

    async def _upload(self, request: web.Request) -> web.Response:
        """``POST /2/media/upload`` (multipart ``media``, ``media_category``): ``{"data": {"id", "media_key"}}``."""
        recorded = await self.record(request)
        await self.provider_latency()
        step = self.next_step()
        if step is not None:
            return await self.answer(step)
        if not request.headers.get("Authorization", "").startswith("OAuth "):
            return await self.answer(self.unauthorized())
        fields = multipart_fields(request, recorded)
        media = fields.get("media")
        if not isinstance(media, bytes) or fields.get("media_category") != "tweet_image":
            return await self.answer(self.problem(400, "Invalid Request", "media and media_category are required"))
        media_id = str(1_880_000_000_000_000_000 + len(self.media))
        self.media[media_id] = media
        return await self.answer(Step(200, {"data": {"id": media_id, "media_key": f"3_{media_id}",
                                                     "size": len(media), "expires_after_secs": 86400}}))

    def _accept(self, body: dict[str, Any]) -> dict[str, Any]:
        tweet_id = str(self._next_id)
        self._next_id += 1
        reply = body.get("reply")
        reply_to = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        media = body.get("media")
        media_ids = media.get("media_ids") if isinstance(media, dict) else None
        tweet = {"id": tweet_id, "text": body.get("text"), "reply_to": reply_to}
        self.tweets.append({**tweet, "media_ids": media_ids} if media_ids else tweet)
        return {"id": tweet_id, "text": body.get("text"), "edit_history_tweet_ids": [tweet_id]}
