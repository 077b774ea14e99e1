"""Alert cards over HTTP: the public ``/cards/{alert_id}/{lang}.png`` Instagram fetches, and the console's preview."""

from __future__ import annotations

import contextlib
import io
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from broadcaster.app.context import App, load
from broadcaster.service.app import make_app
from broadcaster.store import open_store
from tests.channels.kinds import GRAPH_TOKEN, IG_USER_ID
from tests.engine.providers import Providers
from tests.fakes.graph import FakeGraph
from tests.service.support import ROOMY, Api, add_users, rewrite_config


def png_size(raw: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(raw))
    assert image.format == "PNG"
    return image.size


async def test_live_and_exercise_cards_are_public_a_dry_runs_is_not(api: Api) -> None:
    ids = {}
    for mode, template in (("live", "road_closure"), ("exercise", "flood_warning"), ("dry-run", "earthquake")):
        status, body = await api.fire("officer", template=template, mode=mode)
        assert status == 202, body
        ids[mode] = body["alert_id"]
    await api.settle()

    for mode in ("live", "exercise"):
        for lang in ("ar", "en"):
            async with api.client.get(f"/cards/{ids[mode]}/{lang}.png") as response:  # no token
                assert response.status == 200, mode
                assert response.content_type == "image/png"
                assert png_size(await response.read()) == (1080, 1080)
    for path in (f"/cards/{ids['dry-run']}/ar.png", "/cards/20260101-000000-abcdef/ar.png",
                 f"/cards/{ids['live']}/fr.png"):
        status, _ = await api.get(path, None)
        assert status == 404, path


async def test_the_same_card_is_served_again_from_memory(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    status, body = await api.fire("officer", template="road_closure", mode="live")
    assert status == 202, body
    await api.settle()
    first = await api.get(f"/cards/{body['alert_id']}/ar.png", None)
    drawn: list[Any] = []
    monkeypatch.setattr("broadcaster.service.cards.published_card", lambda *a: drawn.append(a))
    again = await api.get(f"/cards/{body['alert_id']}/ar.png", None)
    assert first == again and first[0] == 200 and drawn == []


async def test_the_console_previews_each_languages_card(api: Api) -> None:
    body = {"template": "road_closure", "use_examples": True, "mode": "exercise"}
    for lang in ("ar", "en"):
        status, raw = await api.call("POST", f"/api/preview/cards/{lang}", "viewer", body)
        assert status == 200 and png_size(raw) == (1080, 1080)
    status, _ = await api.call("POST", "/api/preview/cards/ar", None, body)
    assert status == 401, "a preview needs a signed-in user"
    status, problem = await api.call("POST", "/api/preview/cards/ar", "viewer", {**body, "template": "nope"})
    assert status == 400 and problem["field"] == "template"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def serving_at(p: Providers, port: int) -> AsyncIterator[Api]:
    """The service on a known port, so that channels.toml can name its public URL before it starts."""
    config, catalogue, database = load(str(p.config), str(p.db))
    store = await open_store(database)
    try:
        tokens = await add_users(store)
        app = App(config=config, catalogue=catalogue, store=store, database=database)
        client: TestClient[Any, Any] = TestClient(TestServer(make_app(app, limits=ROOMY), port=port))
        await client.start_server()
        try:
            yield Api(client=client, app=app, tokens=tokens, providers=p)
        finally:
            await client.close()
    finally:
        await store.close()


async def test_instagram_fetches_each_live_card_from_serve(providers: Providers,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A live fire through serve: Instagram's two-step publish, the image fetched from serve's public URL."""
    monkeypatch.setenv("INSTAGRAM_TOKEN", GRAPH_TOKEN)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with FakeGraph(token=GRAPH_TOKEN, fetch_images=True) as graph:
        rewrite_config(providers, public_url=public, extra=[
            {"id": "instagram-authority", "kind": "instagram", "ig_user_id": IG_USER_ID, "token_env": "INSTAGRAM_TOKEN",
             "api_base": graph.base_url, "rate_per_second": 50}])
        async with serving_at(providers, port) as api:
            status, body = await api.fire("officer", template="road_closure", mode="live",
                                          channels="instagram-authority")
            assert status == 202, body
            await api.settle()
            served = {lang: (await api.get(f"/cards/{body['alert_id']}/{lang}.png", None))[1] for lang in ("ar", "en")}

    # The two posts go out concurrently (the dispatcher's in-flight requests), so in either order.
    media = {m["image_url"]: m for m in graph.media}
    urls = {lang: f"{public}/cards/{body['alert_id']}/{lang}.png" for lang in ("ar", "en")}
    assert len(graph.media) == 2 and set(media) == set(urls.values())
    assert graph.images == {urls[lang]: served[lang] for lang in ("ar", "en")}
    assert all(png_size(png) == (1080, 1080) for png in served.values())
    assert media[urls["ar"]]["caption"].startswith("إغلاق")

