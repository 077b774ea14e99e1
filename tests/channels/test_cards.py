"""``card = true`` on X and Telegram: the alert card attached where the API allows it (Facebook: test_facebook).

The real SDKs (tweepy and oauthlib, python-telegram-bot) against the loopback fakes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broadcaster.channels.base import Clients, OutboundMessage
from broadcaster.channels.telegram import CAPTION_LIMIT, TelegramChannel
from broadcaster.channels.x import XChannel
from broadcaster.errors import DeliveryError, Reason
from broadcaster.netguard import no_network
from tests.channels.kinds import NOW, TELEGRAM_TOKEN, X_KEYS, closed_port_url
from tests.fakes.telegram import FakeTelegram
from tests.fakes.x import FakeX
from tests.support import channel_config
from tests.templates.support import render_kind

PNG = b"\x89PNG\r\n\x1a\n-alert-card"
TEXT = "إغلاق شارع الشيخ زايد بسبب أعمال صيانة"


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**X_KEYS, "BCAST_TEST_TELEGRAM_TOKEN": TELEGRAM_TOKEN}.items():
        monkeypatch.setenv(name, value)


def x_channel(tmp_path: Path, api_base: str, clients: Clients, **extra: Any) -> XChannel:
    table = {"id": "x", "kind": "x", "api_key_env": "BCAST_TEST_X_API_KEY", "api_secret_env": "BCAST_TEST_X_API_SECRET",
             "access_token_env": "BCAST_TEST_X_ACCESS_TOKEN", "access_secret_env": "BCAST_TEST_X_ACCESS_SECRET",
             "api_base": api_base, "timeout_s": 2.0, "card": True, **extra}
    return XChannel(channel_config(tmp_path, **table), clients, now=lambda: NOW)


def telegram_channel(tmp_path: Path, api_base: str, clients: Clients, **extra: Any) -> TelegramChannel:
    table = {"id": "tg", "kind": "telegram", "chat_id": "@authority_alerts", "token_env": "BCAST_TEST_TELEGRAM_TOKEN",
             "api_base": api_base, "timeout_s": 2.0, "card": True, **extra}
    return TelegramChannel(channel_config(tmp_path, **table), clients)


def message(language: str = "ar", **fields: Any) -> OutboundMessage:
    return OutboundMessage(delivery_id=1, alert_id="A-1", channel_id="c", language=language, text=TEXT,
                           payload=PNG, **fields)


async def test_an_x_post_uploads_its_card_then_names_it(tmp_path: Path, clients: Clients) -> None:
    async with FakeX() as fake, x_channel(tmp_path, fake.base_url, clients) as channel:
        receipt = await channel.send(message())
        await channel.send(OutboundMessage(delivery_id=2, alert_id="A-2", channel_id="c", language="ar",
                                           text="تحديث", payload=PNG, reply_to=receipt.provider_id))

    upload, post, _, reply = fake.requests
    assert upload.path == "/2/media/upload" and upload.headers["Authorization"].startswith("OAuth ")
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    [(media_id, image), (second_id, _)] = fake.media.items()
    assert image == PNG
    assert post.json["media"] == {"media_ids": [media_id]} and fake.tweets[0]["media_ids"] == [media_id]
    assert fake.tweets[1]["reply_to"] == receipt.provider_id and reply.json["media"] == {"media_ids": [second_id]}


async def test_a_refused_card_upload_posts_nothing(tmp_path: Path, clients: Clients) -> None:
    async with FakeX() as fake, x_channel(tmp_path, fake.base_url, clients) as channel:
        fake.script(FakeX.rate_limited(reset_at=NOW + 90))
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message())
    assert (caught.value.reason, caught.value.retry_after, caught.value.sent_maybe) == (Reason.RATE_LIMITED, 90.0,
                                                                                       False)
    assert fake.tweets == [] and len(fake.requests) == 1


async def test_a_telegram_card_is_a_photo_with_the_text_as_caption(tmp_path: Path, clients: Clients) -> None:
    async with FakeTelegram(token=TELEGRAM_TOKEN) as fake, \
            telegram_channel(tmp_path, fake.base_url, clients) as channel:
        receipt = await channel.send(message())
        await channel.send(message(reply_to=receipt.provider_id))

    first, reply = fake.sent
    assert fake.requests[0].path.endswith("/sendPhoto")
    assert (first["photo"], first["caption"], first["parse_mode"]) == (PNG, TEXT, "HTML")
    assert receipt.provider_id == str(first["message_id"]) and reply["reply_to_message_id"] == first["message_id"]


async def test_cards_are_rehearsed_without_a_socket(tmp_path: Path, connects: list[Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*X_KEYS, "BCAST_TEST_TELEGRAM_TOKEN"):
        monkeypatch.delenv(name)
    (tmp_path / "t").mkdir()
    with no_network():
        async with (
            Clients(recording=True, latency_s=0) as clients,
            x_channel(tmp_path, closed_port_url(), clients) as x,
            telegram_channel(tmp_path / "t", closed_port_url(), clients) as telegram,
        ):
            tweeted = await x.send(message())
            photographed = await telegram.send(message())
    assert connects == [] and clients.recorded == {"x": 2, "telegram": 1}  # an upload and a post; one photo
    assert tweeted.provider_id and photographed.provider_id


def test_a_card_caption_is_the_headline_and_short_form_within_1024(tmp_path: Path) -> None:
    forms = {"ar": {"headline": "عنوان", "short": "نص قصير", "long": "نص طويل"},
             "en": {"headline": "Title", "short": "Short", "long": "Long"}}
    config = channel_config(tmp_path, id="tg", kind="telegram", chat_id="@a", token_env="T", card=True)
    [rendered] = TelegramChannel.render(forms, config)
    assert rendered.text == "<b>عنوان</b>\n\nنص قصير\n\n—————\n\n<b>Title</b>\n\nShort"
    assert rendered.limit == CAPTION_LIMIT == 1024
    [plain] = render_kind("telegram", forms, ("ar", "en"))
    assert "نص طويل" in plain.text and plain.limit == 4096


def test_which_cards_a_channel_carries(tmp_path: Path) -> None:
    def config(kind: str, **table: Any) -> Any:
        keys = {"x": {"api_key_env": "A", "api_secret_env": "B", "access_token_env": "C", "access_secret_env": "D"},
                "telegram": {"chat_id": "@a", "token_env": "T"}}[kind]
        return channel_config(tmp_path, id=f"{kind}-c", kind=kind, **keys, **table)

    assert XChannel.card_languages(config("x", card=True)) == ("ar", "en")
    assert XChannel.card_languages(config("x")) == ()
    assert TelegramChannel.card_languages(config("telegram", card=True)) == ("ar",)  # combined: the first
    assert TelegramChannel.card_languages(config("telegram", card=True, layout="separate")) == ("ar", "en")
