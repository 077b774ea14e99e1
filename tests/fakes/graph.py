"""A fake Meta Graph API for Facebook Pages and Instagram accounts, answering like graph.facebook.com.

Usage::

    async with FakeGraph(token="EAAB...") as fake:
        fake.script(graph_error(17, "User request limit reached", status=400))
        ... point a channel's api_base at fake.base_url ...
        assert fake.posts[0]["message"] == "..."

Served under ``/{version}/``:

* ``POST /{page_id}/feed`` (``message``) and ``POST /{page_id}/photos`` (multipart
  ``source`` and ``message``): a Page post, answered ``{"id": "PAGEID_POSTID"}``
  (a photo: ``{"id", "post_id"}``); the same message twice is error 506;
* ``POST /{post_id}/comments``: a comment, ``{"id": "POSTID_COMMENTID"}``;
* ``GET /{page_id}/feed`` and ``GET /{post_id}/comments``: what was posted, newest first;
* ``POST /{ig_user_id}/media`` (``image_url``, ``caption``): a container, then
  ``POST /{ig_user_id}/media_publish`` (``creation_id``) publishes it: ``{"id"}``;
  ``GET /{ig_user_id}/media``: what was published. With ``fetch_images`` the fake
  fetches each ``image_url`` as Instagram does, and refuses (9004) what it cannot.

A request without ``Authorization: Bearer {token}`` gets error 190; a token in the
query string is recorded in :attr:`tokens_in_urls` (it must never happen). A
scripted step answers instead; with ``accept=True`` the post is made first (it
"went out"). :class:`GraphStep` with ``only="media_publish"`` waits for that edge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.server import FakeServer, Step, multipart_fields


@dataclass
class GraphStep(Step):
    """A scripted answer kept for the first request to the ``only`` edge (any edge when None)."""

    only: str | None = None


def graph_error(code: int, message: str, *, status: int = 400, subcode: int | None = None,
                type_: str = "OAuthException", headers: dict[str, str] | None = None, hang: float = 0.0,
                only: str | None = None) -> GraphStep:
    """A Graph API error answer: ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``."""
    error: dict[str, Any] = {"message": message, "type": type_, "code": code, "fbtrace_id": "AbCdEf123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return GraphStep(status, {"error": error}, headers or {}, hang=hang, only=only)


def graph_hang(seconds: float, *, accept: bool = True, only: str | None = None) -> GraphStep:
    """Answer after ``seconds``; ``accept`` makes the post first (a timeout after it went out)."""
    return GraphStep(200, None, hang=seconds, accept=accept, only=only)


class FakeGraph(FakeServer):
    """Pages and Instagram accounts that take posts with one access token."""

    def __init__(self, *, token: str, latency: float = 0.0, fetch_images: bool = False) -> None:
        super().__init__(latency=latency)
        self.token = token
        self.fetch_images = fetch_images
        self.posts: list[dict[str, Any]] = []  # Page posts (photos included)
        self.comments: list[dict[str, Any]] = []
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: list[dict[str, Any]] = []  # published Instagram media
        self.images: dict[str, bytes] = {}  # image_url -> what the fake fetched from it
        self.tokens_in_urls: list[str] = []
        self._next = 1
        self.app.router.add_route("*", "/{version}/{node}/{edge}", self._handle)

    # -- serving ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        recorded = await self.record(request)
        if "access_token" in request.query:
            self.tokens_in_urls.append(request.path_qs)
        node, edge = request.match_info["node"], request.match_info["edge"]
        params = {**recorded.query, **recorded.form, **multipart_fields(request, recorded)}
        await self.provider_latency()
        step = self._step_for(edge)
        if step is not None:
            made = await self._make(request.method, node, edge, params) if step.accept else None
            if step.body is None and made is not None:
                return await self.answer(Step(step.status, made, step.headers, step.hang))
            return await self.answer(step)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return await self.answer(graph_error(190, "Invalid OAuth access token - Cannot parse access token"))
        if request.method == "GET":
            return await self.answer(Step(200, self._listing(node, edge)))
        if edge in ("feed", "photos") and any(p["message"] == params.get("message") for p in self.posts):
            return await self.answer(graph_error(506, "Duplicate status message"))
        if edge == "media" and self.fetch_images and not await self._fetch(str(params.get("image_url", ""))):
            return await self.answer(graph_error(9004, "The media could not be fetched from this uri",
                                                 subcode=2207052, type_="OAuthException"))
        if edge == "media_publish" and str(params.get("creation_id")) not in self.containers:
            return await self.answer(graph_error(9007, "Media ID is not available", subcode=2207027))
        made = await self._make(request.method, node, edge, params)
        if made is None:
            return await self.answer(graph_error(100, f"Unsupported {request.method} request",
                                                 type_="GraphMethodException"))
        return await self.answer(Step(200, made))

    def _step_for(self, edge: str) -> Step | None:
        if not self.steps:
            return None
        first = self.steps[0]
        if isinstance(first, GraphStep) and first.only is not None and first.only != edge:
            return None
        return self.steps.popleft()

    async def _make(self, method: str, node: str, edge: str, params: dict[str, Any]) -> dict[str, Any] | None:
        if method != "POST":
            return None
        n, now = self._next, time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime())
        self._next += 1
        if edge in ("feed", "photos"):
            post = {"id": f"{node}_{9000 + n}", "message": params.get("message"), "created_time": now,
                    "photo": params.get("source") if edge == "photos" else None}
            self.posts.append(post)
            return {"id": f"{8000 + n}", "post_id": post["id"]} if edge == "photos" else {"id": post["id"]}
        if edge == "comments":
            comment = {"id": f"{node}_{7000 + n}", "parent": node, "message": params.get("message"),
                       "created_time": now, "photo": params.get("source")}
            self.comments.append(comment)
            return {"id": comment["id"]}
        if edge == "media":
            container = f"{17_000_000 + n}"
            self.containers[container] = {"owner": node, "image_url": params.get("image_url"),
                                          "caption": params.get("caption")}
            return {"id": container}
        if edge == "media_publish":
            container = self.containers.pop(str(params.get("creation_id")))
            media = {"id": f"{18_000_000 + n}", "caption": container["caption"], "timestamp": now,
                     "image_url": container["image_url"], "owner": node}
            self.media.append(media)
            return {"id": media["id"]}
        return None

    def _listing(self, node: str, edge: str) -> dict[str, Any]:
        if edge == "feed":
            items = [{k: p[k] for k in ("id", "message", "created_time")} for p in self.posts
                     if p["id"].startswith(f"{node}_")]
        elif edge == "comments":
            items = [{k: c[k] for k in ("id", "message", "created_time")} for c in self.comments
                     if c["parent"] == node]
        elif edge == "media":
            items = [{k: m[k] for k in ("id", "caption", "timestamp")} for m in self.media if m["owner"] == node]
        else:
            items = []
        return {"data": list(reversed(items)), "paging": {}}

    async def _fetch(self, url: str) -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                if response.status != 200 or response.content_type != "image/png":
                    return False
                self.images[url] = await response.read()
                return True
        except aiohttp.ClientError:
            return False

