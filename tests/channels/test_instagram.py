"""InstagramChannel: the two-step publish of a card with its caption (shared checks: test_conformance.py).

aiohttp against FakeGraph on 127.0.0.1, speaking the Graph API's wire format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from broadcaster.channels.base import AlertDocument, Clients, OutboundMessage
from broadcaster.channels.instagram import InstagramChannel, card_url
from broadcaster.errors import ConfigError, DeliveryError, Reason
from tests.channels.kinds import GRAPH_TOKEN, IG_USER_ID, PUBLIC_URL
from tests.fakes.graph import FakeGraph, graph_error, graph_hang
from tests.support import make_config
from tests.templates.support import render_kind

CAPTION = "إغلاق شارع الشيخ زايد بسبب أعمال صيانة\n\nتعلن الجهات المختصة عن إغلاق الطريق."


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCAST_TEST_IG_TOKEN", GRAPH_TOKEN)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(token=GRAPH_TOKEN) as server:
        yield server


def make(tmp_path: Path, api_base: str, clients: Clients, public_url: str = PUBLIC_URL,
         **extra: Any) -> InstagramChannel:
    table = {"id": "ig", "kind": "instagram", "ig_user_id": IG_USER_ID, "token_env": "BCAST_TEST_IG_TOKEN",
             "api_base": api_base, "timeout_s": 2.0, **extra}
    return InstagramChannel(make_config(tmp_path, [table], public_url=public_url).channels[0], clients)


def post(caption: str = CAPTION, url: str = f"{PUBLIC_URL}/cards/A-1/ar.png") -> OutboundMessage:
    return OutboundMessage(delivery_id=5, alert_id="A-1", channel_id="ig", language="ar", text=caption,
                           payload=orjson.dumps({"image_url": url}))


async def test_a_post_is_a_container_then_its_publication(tmp_path: Path, fake: FakeGraph, clients: Clients) -> None:
    async with make(tmp_path, fake.base_url, clients) as channel:
        receipt = await channel.send(post())

    container, publish = fake.requests
    assert (container.path, container.form) == (f"/v21.0/{IG_USER_ID}/media",
                                                 {"image_url": f"{PUBLIC_URL}/cards/A-1/ar.png", "caption": CAPTION})
    assert publish.path == f"/v21.0/{IG_USER_ID}/media_publish"
    assert publish.form["creation_id"] and publish.form["creation_id"] not in fake.containers  # published
    assert all(r.headers["Authorization"] == f"Bearer {GRAPH_TOKEN}" for r in fake.requests)
    assert fake.tokens_in_urls == []
    [media] = fake.media
    assert (media["caption"], receipt.provider_id, receipt.http_status) == (CAPTION, media["id"], 200)


def test_a_channel_refuses_to_load_without_a_public_url(tmp_path: Path) -> None:
    table = {"id": "ig", "kind": "instagram", "ig_user_id": IG_USER_ID, "token_env": "T"}
    with pytest.raises(ConfigError, match=r"channel 'ig': kind 'instagram' needs \[broadcaster\] public_url"):
        make_config(tmp_path, [table], public_url=None)


async def test_a_timeout_making_the_container_published_nothing(tmp_path: Path, fake: FakeGraph,
                                                                 clients: Clients) -> None:
    fake.script(graph_hang(30, accept=True, only="media"))
    async with make(tmp_path, fake.base_url, clients, timeout_s=0.3) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(post())
    assert (caught.value.reason, caught.value.retryable, caught.value.sent_maybe) == (Reason.TIMEOUT, True, False)
    assert fake.media == [] and len(fake.requests) == 1


async def test_after_a_publish_timeout_reconcile_finds_the_post(tmp_path: Path, fake: FakeGraph,
                                                                clients: Clients) -> None:
    since = datetime.now(UTC)
    fake.script(graph_hang(30, accept=True, only="media_publish"))
    async with make(tmp_path, fake.base_url, clients, timeout_s=0.3) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(post())
        found = await channel.reconcile(post(), since)
        absent = await channel.reconcile(post("تعليق آخر"), since)
    assert caught.value.sent_maybe
    assert found is not None and found.provider_id == fake.media[0]["id"] and absent is None
    assert len(fake.media) == 1


@pytest.mark.parametrize(("code", "subcode", "reason", "retryable"), [
    (9007, 2207027, Reason.SERVER, True),  # the container is not ready yet
    (9004, 2207052, Reason.SERVER, True),  # Instagram could not fetch the card (is serve up?)
    (36003, None, Reason.BAD_REQUEST, False),  # an image Instagram does not take
    (190, 460, Reason.AUTH, False),
    (4, None, Reason.RATE_LIMITED, True),
])
async def test_instagrams_own_error_codes(tmp_path: Path, fake: FakeGraph, clients: Clients, code: int,
                                          subcode: int | None, reason: Reason, retryable: bool) -> None:
    fake.script(graph_error(code, f"error {code}", subcode=subcode, only="media_publish"))
    async with make(tmp_path, fake.base_url, clients) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(post())
    assert (caught.value.reason, caught.value.retryable) == (reason, retryable)
    assert fake.media == []


async def test_instagram_fetches_the_card_from_its_public_url(tmp_path: Path, clients: Clients) -> None:
    png = b"\x89PNG\r\n\x1a\ncard"

    async def serve_card(request: web.Request) -> web.Response:
        return web.Response(body=png, content_type="image/png")

    cards = web.Application()
    cards.router.add_get("/cards/{alert_id}/{lang}.png", serve_card)
    runner = web.AppRunner(cards)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    public = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with FakeGraph(token=GRAPH_TOKEN, fetch_images=True) as fake, \
                make(tmp_path, fake.base_url, clients, public_url=public) as channel:
            await channel.send(post(url=card_url(public, "A-1", "ar")))
            with pytest.raises(DeliveryError) as caught:
                await channel.send(post("تعليق آخر", url=f"{public}/missing.png"))
    finally:
        await runner.cleanup()
    assert fake.images == {f"{public}/cards/A-1/ar.png": png}
    assert caught.value.provider_code == "9004/2207052" and caught.value.retryable


def test_the_payload_is_the_cards_public_url(tmp_path: Path) -> None:
    config = make_config(tmp_path, [{"id": "ig", "kind": "instagram", "ig_user_id": IG_USER_ID, "token_env": "T"}],
                         public_url="https://alerts.example.gov/").channels[0]
    forms = {lang: {"headline": "h", "short": "s", "long": "l"} for lang in ("ar", "en")}
    document = AlertDocument(alert_id="20261123-180000-ab12cd", identifier="i", sender="s", sent="", expires="",
                             status="Actual", msg_type="Alert", references=None, template="t", cap={}, event={},
                             areas=(), forms=forms, public_url="https://alerts.example.gov/")
    ar, en = InstagramChannel.render(forms, config)
    assert orjson.loads(InstagramChannel.payload(document, en, config)) == {
        "image_url": "https://alerts.example.gov/cards/20261123-180000-ab12cd/en.png"}
    assert InstagramChannel.card_languages(config) == ("ar", "en")
    with pytest.raises(ConfigError, match="public_url"):
        InstagramChannel.payload(replace(document, public_url=None), ar, config)


def test_captions_are_held_to_2200_characters_and_30_hashtags() -> None:
    def forms(long: str) -> dict[str, dict[str, str]]:
        return {lang: {"headline": "h", "short": "s", "long": long} for lang in ("ar", "en")}

    [fits] = render_kind("instagram", forms("ب" * 2197), ("ar",))
    [too_long] = render_kind("instagram", forms("ب" * 2198), ("ar",))
    [tagged] = render_kind("instagram", forms(" ".join(f"#tag{n}" for n in range(31))), ("en",))
    assert (fits.length, fits.limit, fits.unit, fits.fits) == (2200, 2200, "characters", True)
    assert not too_long.fits
    assert (tagged.length, tagged.limit, tagged.unit, tagged.fits) == (31, 30, "hashtags", False)
