"""TelegramChannel: what is particular to Telegram (the shared checks are in test_conformance.py).

The real python-telegram-bot against FakeTelegram on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram.error import BadRequest, NetworkError, TimedOut

from broadcaster.channels.base import Clients, OutboundMessage
from broadcaster.channels.telegram import (
    TELEGRAM_SEPARATOR,
    Layout,
    TelegramChannel,
    TelegramOptions,
    classify_telegram,
    telegram_html,
)
from broadcaster.errors import ConfigError, DeliveryError, Reason
from broadcaster.secret import Secret
from broadcaster.states import OnUnknown
from broadcaster.templates.render import EXERCISE_MARKER
from tests.fakes.server import Step
from tests.fakes.telegram import FakeTelegram
from tests.support import channel_config

TOKEN = "123456:SECRET-TOKEN-VALUE"
TOKEN_ENV = "BCAST_TEST_TELEGRAM_TOKEN"
CHAT = "@authority_alerts"
ARABIC_HTML = (
    "<b>تحذير من الفيضانات</b>\n"
    "ابتعدوا عن الأودية قرب «شارع الشيخ زايد» حتى 18:00.\n"
    "<b>Flood warning</b>: keep away from wadis near Sheikh Zayed Road until 18:00."
)


def message(text: str = ARABIC_HTML, *, reply_to: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=7, alert_id="A-1", channel_id="telegram-authority", language="ar+en",
        text=text, reply_to=reply_to,
    )


def make_channel(tmp_path: Path, api_base: str, clients: Clients, **extra: Any) -> TelegramChannel:
    table: dict[str, Any] = {
        "id": "telegram-authority",
        "kind": "telegram",
        "chat_id": CHAT,
        "token_env": TOKEN_ENV,
        "api_base": api_base,
        "timeout_s": 2.0,
    }
    table.update(extra)
    return TelegramChannel(channel_config(tmp_path, **table), clients)


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as server:
        yield server


@pytest.fixture
async def channel(tmp_path: Path, fake: FakeTelegram, clients: Clients) -> AsyncIterator[TelegramChannel]:
    async with make_channel(tmp_path, fake.base_url, clients) as ch:
        yield ch


async def test_send_posts_html_with_arabic_intact(channel: TelegramChannel, fake: FakeTelegram) -> None:
    receipt = await channel.send(message())

    assert len(fake.sent) == 1
    sent = fake.sent[0]
    assert receipt.provider_id == str(sent["message_id"])
    assert receipt.http_status == 200
    assert sent["chat_id"] == CHAT
    assert sent["text"] == ARABIC_HTML
    assert sent["parse_mode"] == "HTML"
    assert sent["link_preview_disabled"] is True
    assert sent["reply_to_message_id"] is None
    # One request, straight to sendMessage on the configured api_base: no getMe first.
    assert [r.path for r in fake.requests] == [f"/bot{TOKEN}/sendMessage"]


async def test_reply_threads_under_the_original(channel: TelegramChannel, fake: FakeTelegram) -> None:
    first = await channel.send(message())
    assert first.provider_id is not None

    await channel.send(message("<b>إلغاء</b> Cancelled", reply_to=first.provider_id))

    assert fake.sent[1]["reply_to_message_id"] == int(first.provider_id)
    # A deleted original must not stop the correction going out.
    assert '"allow_sending_without_reply": true' in fake.requests[1].form["reply_parameters"]


async def test_reply_to_that_is_not_a_message_id_is_a_bad_request(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await channel.send(message(reply_to="1790000000000000000x"))

    assert caught.value.reason is Reason.BAD_REQUEST
    assert caught.value.retryable is False
    assert fake.requests == []


@pytest.mark.parametrize(
    ("step", "reason", "retryable", "retry_after", "http_status"),
    [
        (FakeTelegram.retry_after(7), Reason.RATE_LIMITED, True, 7.0, 429),
        (FakeTelegram.error(429, "Too Many Requests"), Reason.RATE_LIMITED, True, None, 429),
        (FakeTelegram.chat_not_found(), Reason.RECIPIENT_GONE, False, None, 400),
        (FakeTelegram.bad_request("Bad Request: message is too long"), Reason.BAD_REQUEST, False, None, 400),
        (
            FakeTelegram.bad_request("Bad Request: can't parse entities: unclosed start tag"),
            Reason.BAD_REQUEST, False, None, 400,
        ),
        (
            FakeTelegram.error(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1001),
            Reason.RECIPIENT_GONE, False, None, 400,
        ),
        (FakeTelegram.bot_kicked(), Reason.RECIPIENT_GONE, False, None, 403),
        (FakeTelegram.error(403, "Forbidden: bot was blocked by the user"), Reason.RECIPIENT_GONE, False, None, 403),
        (FakeTelegram.unauthorized(), Reason.AUTH, False, None, 401),
        (FakeTelegram.error(404, "Not Found"), Reason.AUTH, False, None, 404),
        (FakeTelegram.error(413, "Request Entity Too Large"), Reason.BAD_REQUEST, False, None, 413),
        (FakeTelegram.bad_gateway(), Reason.SERVER, True, None, 502),
        (FakeTelegram.server_error(500), Reason.SERVER, True, None, 500),
        (FakeTelegram.server_error(503, "Service Unavailable"), Reason.SERVER, True, None, 503),
    ],
    ids=[
        "429-retry-after", "429-bare", "chat-not-found", "too-long", "bad-html", "migrated", "kicked",
        "blocked", "401", "404", "413", "502-html", "500", "503",
    ],
)
async def test_classification(
    channel: TelegramChannel,
    fake: FakeTelegram,
    step: Step,
    reason: Reason,
    retryable: bool,
    retry_after: float | None,
    http_status: int,
) -> None:
    fake.script(step)

    with pytest.raises(DeliveryError) as caught:
        await channel.send(message())

    error = caught.value
    assert (error.reason, error.retryable, error.retry_after, error.http_status) == (
        reason, retryable, retry_after, http_status,
    )
    assert error.sent_maybe is False
    assert len(fake.requests) == 1, "the SDK must not retry on its own"
    assert fake.sent == []


async def test_migrated_group_names_the_new_chat_id(channel: TelegramChannel, fake: FakeTelegram) -> None:
    fake.script(FakeTelegram.error(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1001))

    with pytest.raises(DeliveryError) as caught:
        await channel.send(message())

    assert caught.value.provider_code == "migrated:-1001"


def test_badrequest_is_never_retried_although_it_is_a_network_error() -> None:
    exc = BadRequest("Message is too long")
    assert isinstance(exc, NetworkError)

    error = classify_telegram(exc)

    assert (error.reason, error.retryable) == (Reason.BAD_REQUEST, False)


@pytest.mark.parametrize(
    ("cause", "sent_maybe"),
    [(httpx.ConnectTimeout("connect"), False), (httpx.PoolTimeout("pool"), False), (httpx.ReadTimeout("read"), True)],
)
def test_timeout_says_whether_the_request_left(cause: Exception, sent_maybe: bool) -> None:
    exc = TimedOut()
    exc.__cause__ = cause

    error = classify_telegram(exc)

    assert (error.reason, error.retryable, error.sent_maybe) == (Reason.TIMEOUT, True, sent_maybe)


def test_classify_scrubs_the_token_from_sdk_messages() -> None:
    exc = NetworkError(f"httpx.InvalidURL: bad URL https://api.telegram.org/bot{TOKEN}/sendMessage")
    exc.__cause__ = httpx.InvalidURL("bad")

    error = classify_telegram(exc, secrets=(Secret(TOKEN, TOKEN_ENV),))

    assert TOKEN not in str(error)
    assert "bot********/sendMessage" in str(error)


def test_unknown_policy_follows_config(tmp_path: Path) -> None:
    clients = Clients(recording=True)
    assert make_channel(tmp_path, "http://127.0.0.1:1", clients).on_unknown is OnUnknown.RESEND
    assert make_channel(tmp_path, "http://127.0.0.1:1", clients, on_unknown="hold").on_unknown is OnUnknown.HOLD
    assert TelegramChannel.can_reconcile is False


def test_a_numeric_chat_id_may_be_a_toml_integer(tmp_path: Path) -> None:
    config = channel_config(tmp_path, id="t", kind="telegram", chat_id=-1001234567890, token_env=TOKEN_ENV)
    assert config.options_of(TelegramOptions).chat_id == "-1001234567890"
    with pytest.raises(ConfigError, match="key 'chat_id': must be an @channel name or a numeric chat id"):
        channel_config(tmp_path, id="t", kind="telegram", chat_id=["@a"], token_env=TOKEN_ENV)


FORMS = {
    "ar": {"headline": "[تمرين] إغلاق «شارع الشيخ زايد»", "short": "-", "long": "[تمرين] ابتعدوا <هنا> & هناك"},
    "en": {"headline": "[EXERCISE] Sheikh Zayed Road closed", "short": "-", "long": "[EXERCISE] Keep <away> & safe"},
}


def test_combined_layout_is_one_html_message_arabic_first(tmp_path: Path) -> None:
    config = channel_config(tmp_path, id="t", kind="telegram", chat_id=CHAT, token_env=TOKEN_ENV)
    [message] = TelegramChannel.render(FORMS, config)

    assert message.language == "ar+en"
    ar, en = message.text.split(TELEGRAM_SEPARATOR)
    assert ar == telegram_html(FORMS, "ar") and en == telegram_html(FORMS, "en")
    assert ar.startswith("<b>[تمرين] إغلاق") and "&lt;هنا&gt; &amp; هناك" in ar
    # The exercise marker is shown once per language, on the headline.
    assert message.text.count(EXERCISE_MARKER["ar"]) == 1 and message.text.count(EXERCISE_MARKER["en"]) == 1
    assert (message.unit, message.limit, message.fits) == ("characters", 4096, True)


def test_separate_layout_is_one_message_per_language(tmp_path: Path) -> None:
    config = channel_config(tmp_path, id="t", kind="telegram", chat_id=CHAT, token_env=TOKEN_ENV, layout="separate")
    assert config.options_of(TelegramOptions).layout is Layout.SEPARATE
    assert [m.language for m in TelegramChannel.render(FORMS, config)] == ["ar", "en"]


def test_a_piece_is_measured_after_telegram_parses_its_entities() -> None:
    # "<" is sent as "&lt;" but Telegram counts the one character it shows.
    assert TelegramChannel.measure_piece("a<b&c") == 5
    # Telegram counts code points (TDLib utf8_length): an astral character is one, not two UTF-16 units.
    assert TelegramChannel.measure_piece("\U0001f30a") == 1


async def test_a_dry_run_answers_as_the_bot_api_and_still_refuses_a_bad_reply_to(tmp_path: Path) -> None:
    async with Clients(recording=True, latency_s=0) as clients, make_channel(tmp_path, "http://127.0.0.1:1",
                                                                              clients) as channel:
        receipt = await channel.send(message())
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message(reply_to="not-a-message-id"))

    assert receipt.provider_id == "dry-run-1" and receipt.http_status == 200
    # The adapter's own check runs in a rehearsal too: the officer learns of it before going live.
    assert (caught.value.reason, caught.value.retryable) == (Reason.BAD_REQUEST, False)
    assert clients.recorded == {"telegram": 1}
