"""XChannel: what is particular to X (the shared checks are in test_conformance.py).

The real tweepy AsyncClient against FakeX on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from broadcaster.channels import x as x_module
from broadcaster.channels.base import Clients, OutboundMessage, Receipt
from broadcaster.channels.recording import RecordedResponse
from broadcaster.channels.x import XChannel, classify_x
from broadcaster.errors import DeliveryError, Reason
from tests.fakes.server import Step
from tests.fakes.x import FakeX
from tests.support import channel_config

NOW = 1_700_000_000
KEYS = {
    "BCAST_TEST_X_API_KEY": "xkey-SECRET-API-KEY-VALUE",
    "BCAST_TEST_X_API_SECRET": "xsec-SECRET-API-SECRET-VALUE",
    "BCAST_TEST_X_ACCESS_TOKEN": "1234567-SECRET:ACCESS-TOKEN-VALUE",
    "BCAST_TEST_X_ACCESS_SECRET": "xacs-SECRET-ACCESS-SECRET-VALUE",
}
ARABIC = (
    "تحذير من الفيضانات: ابتعدوا عن الأودية قرب «شارع الشيخ زايد» حتى 18:00.\n"
    "Flood warning: keep away from wadis near Sheikh Zayed Road until 18:00."
)
DUPLICATE_NOTE = "duplicate: already posted"


def message(text: str = ARABIC, *, reply_to: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=3, alert_id="A-1", channel_id="x-authority", language="ar", text=text, reply_to=reply_to
    )


def make_channel(tmp_path: Path, api_base: str, clients: Clients, **extra: Any) -> XChannel:
    table: dict[str, Any] = {
        "id": "x-authority",
        "kind": "x",
        "api_key_env": "BCAST_TEST_X_API_KEY",
        "api_secret_env": "BCAST_TEST_X_API_SECRET",
        "access_token_env": "BCAST_TEST_X_ACCESS_TOKEN",
        "access_secret_env": "BCAST_TEST_X_ACCESS_SECRET",
        "api_base": api_base,
        "timeout_s": 2.0,
    }
    table.update(extra)
    folder = tmp_path / str(table["id"])
    folder.mkdir(exist_ok=True)
    return XChannel(channel_config(folder, **table), clients, now=lambda: NOW)


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def fake() -> AsyncIterator[FakeX]:
    async with FakeX() as server:
        yield server


@pytest.fixture
async def channel(tmp_path: Path, fake: FakeX, clients: Clients) -> AsyncIterator[XChannel]:
    async with make_channel(tmp_path, fake.base_url, clients) as ch:
        yield ch


async def test_send_posts_the_tweet_to_the_fake(channel: XChannel, fake: FakeX) -> None:
    receipt = await channel.send(message())

    assert fake.tweets == [{"id": receipt.provider_id, "text": ARABIC, "reply_to": None}]
    assert receipt.http_status == 201
    request = fake.requests[0]
    assert (request.method, request.path, request.json) == ("POST", "/2/tweets", {"text": ARABIC})
    # tweepy signed for api.twitter.com; the middleware moved the request to the fake.
    assert request.headers["Host"] == fake.base_url.removeprefix("http://")
    authorization = request.headers["Authorization"]
    assert authorization.startswith("OAuth ")
    assert f'oauth_consumer_key="{KEYS["BCAST_TEST_X_API_KEY"]}"' in authorization
    assert "oauth_signature=" in authorization


async def test_reply_threads_under_the_original(channel: XChannel, fake: FakeX) -> None:
    first = await channel.send(message())

    await channel.send(message("إلغاء: انتهى التحذير. Cancelled: the warning is over.", reply_to=first.provider_id))

    assert fake.tweets[1]["reply_to"] == first.provider_id
    assert fake.requests[1].json["reply"] == {"in_reply_to_tweet_id": first.provider_id}


async def test_api_base_with_a_path_prefix(tmp_path: Path, clients: Clients) -> None:
    async with FakeX(prefix="/gateway/x") as fake, make_channel(tmp_path, f"{fake.base_url}/gateway/x",
                                                                clients) as ch:
        receipt = await ch.send(message())

    assert fake.tweets[0]["id"] == receipt.provider_id
    assert fake.requests[0].path == "/gateway/x/2/tweets"


async def test_duplicate_content_means_already_posted(channel: XChannel, fake: FakeX) -> None:
    first = await channel.send(message())

    again = await channel.send(message())

    assert again == Receipt(provider_id=None, http_status=403, note=DUPLICATE_NOTE)
    assert [t["id"] for t in fake.tweets] == [first.provider_id]


async def test_scripted_duplicate_is_a_receipt_not_an_error(channel: XChannel, fake: FakeX) -> None:
    fake.script(FakeX.duplicate())

    assert await channel.send(message()) == Receipt(provider_id=None, http_status=403, note=DUPLICATE_NOTE)


def daily_cap_spent() -> Step:
    step = FakeX.problem(429, "Too Many Requests", "Too Many Requests")
    step.headers = {
        "x-rate-limit-remaining": "5",
        "x-rate-limit-reset": str(NOW + 60),
        "x-user-limit-24hour-remaining": "0",
        "x-user-limit-24hour-reset": str(NOW + 3600),
    }
    return step


@pytest.mark.parametrize(
    ("step", "reason", "retryable", "retry_after", "http_status"),
    [
        (FakeX.rate_limited(reset_at=NOW + 60), Reason.RATE_LIMITED, True, 60.0, 429),
        (FakeX.rate_limited(reset_at=NOW - 5), Reason.RATE_LIMITED, True, 0.0, 429),
        (FakeX.problem(429, "Too Many Requests", "Too Many Requests"), Reason.RATE_LIMITED, True, None, 429),
        (daily_cap_spent(), Reason.RATE_LIMITED, True, 3600.0, 429),
        (FakeX.unavailable(), Reason.SERVER, True, None, 503),
        (FakeX.problem(500, "Internal Server Error", "Internal Error"), Reason.SERVER, True, None, 500),
        (FakeX.gateway_error(503), Reason.SERVER, True, None, 503),
        (FakeX.unauthorized(), Reason.AUTH, False, None, 401),
        (FakeX.bad_request(), Reason.BAD_REQUEST, False, None, 400),
        (FakeX.forbidden(), Reason.BAD_REQUEST, False, None, 403),
        (FakeX.problem(404, "Not Found", "Not Found"), Reason.BAD_REQUEST, False, None, 404),
        (FakeX.gateway_error(403), Reason.BAD_REQUEST, False, None, 403),
    ],
    ids=[
        "429-reset", "429-reset-past", "429-no-header", "429-daily-cap", "503", "500", "503-html",
        "401", "400", "403", "404", "403-html",
    ],
)
async def test_classification(
    channel: XChannel,
    fake: FakeX,
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
    assert fake.tweets == []


async def test_after_a_timeout_a_resend_is_recognised_as_already_posted(
    tmp_path: Path, fake: FakeX, clients: Clients
) -> None:
    fake.script(FakeX.hang(30, accept=True))

    async with make_channel(tmp_path, fake.base_url, clients, timeout_s=0.3) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message())
        error = caught.value
        assert (error.reason, error.retryable, error.sent_maybe) == (Reason.TIMEOUT, True, True)
        assert len(fake.requests) == 1, "the SDK must not retry on its own"

        # The engine resends an unknown X delivery; X's duplicate check proves it is up.
        assert await channel.send(message()) == Receipt(provider_id=None, http_status=403, note=DUPLICATE_NOTE)

    assert len(fake.tweets) == 1


@pytest.mark.parametrize(
    ("exc", "reason", "sent_maybe"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), Reason.TIMEOUT, False),
        (aiohttp.SocketTimeoutError("read"), Reason.TIMEOUT, True),
        (TimeoutError(), Reason.TIMEOUT, True),
        (aiohttp.ServerDisconnectedError(), Reason.NETWORK, True),
        (json.JSONDecodeError("Expecting value", "<html>", 0), Reason.SERVER, True),
    ],
)
def test_transport_failures(exc: Exception, reason: Reason, sent_maybe: bool) -> None:
    error = classify_x(exc)

    assert (error.reason, error.retryable, error.sent_maybe) == (reason, True, sent_maybe)


def test_unknown_policy_is_resend() -> None:
    assert XChannel.can_reconcile is False


async def test_each_api_base_has_its_own_session_and_channels_on_one_share_it(
    tmp_path: Path, clients: Clients
) -> None:
    async with FakeX() as first, FakeX(prefix="/gw") as second:
        a1 = make_channel(tmp_path, first.base_url, clients, id="a1")
        a2 = make_channel(tmp_path, first.base_url, clients, id="a2")
        b = make_channel(tmp_path, f"{second.base_url}/gw", clients, id="b")
        async with a1, a2, b:
            await a1.send(message("one"))
            await a2.send(message("two"))
            await b.send(message("three"))
            # The redirect middleware is the session's, so each api_base has one session, shared.
            assert a1._client.session._session is a2._client.session._session
            assert a1._client.session._session is not b._client.session._session

    assert [t["text"] for t in first.tweets] == ["one", "two"]
    assert [t["text"] for t in second.tweets] == ["three"]


async def test_a_dry_run_signs_each_tweet_as_a_real_one_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Mapping[str, Any]] = []
    real = x_module._recorded_tweet

    def spy(number: int, method: str, url: str, request: Mapping[str, Any]) -> RecordedResponse:
        seen.append(request)
        return real(number, method, url, request)

    monkeypatch.setattr(x_module, "_recorded_tweet", spy)
    async with Clients(recording=True, latency_s=0) as clients, make_channel(tmp_path, "http://127.0.0.1:1",
                                                                              clients) as channel:
        receipt = await channel.send(message(reply_to="dry-run-5"))

    assert receipt.provider_id == "dry-run-1"
    [request] = seen
    assert request["json"] == {"text": ARABIC, "reply": {"in_reply_to_tweet_id": "5"}}
    authorization = request["headers"]["Authorization"]
    assert authorization.startswith("OAuth ") and "oauth_signature=" in authorization
    assert f'oauth_consumer_key="{KEYS["BCAST_TEST_X_API_KEY"]}"' in authorization


def test_the_short_form_goes_out_one_post_per_language(tmp_path: Path) -> None:
    config = make_channel(tmp_path, "http://127.0.0.1:1", Clients(recording=True)).config
    forms = {"ar": {"headline": "-", "short": ARABIC.split("\n")[0], "long": "-"},
             "en": {"headline": "-", "short": "🌊 Flood", "long": "-"}}
    ar, en = XChannel.render(forms, config)
    assert (ar.language, en.language) == ("ar", "en")
    assert ar.length == len(ar.text)  # Arabic weighs 1 a character
    assert en.length == 2 + len(" Flood")  # an emoji weighs 2
    assert (en.limit, en.unit) == (280, "weighted chars")
