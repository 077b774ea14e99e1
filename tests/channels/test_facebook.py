"""FacebookChannel: what is particular to a Page post (the shared checks are in test_conformance.py).

aiohttp against FakeGraph on 127.0.0.1, speaking the Graph API's wire format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.channels.base import AlertDocument, Clients, OutboundMessage
from broadcaster.channels.facebook import FacebookChannel
from broadcaster.channels.graph import classify_graph
from broadcaster.errors import ConfigError, DeliveryError, Reason
from tests.channels.kinds import GRAPH_TOKEN, PAGE_ID
from tests.fakes.graph import FakeGraph, graph_error, graph_hang
from tests.support import channel_config
from tests.templates.support import render_kind

TEXT = "إغلاق شارع الشيخ زايد بسبب أعمال صيانة\n\nتعلن الجهات المختصة عن إغلاق الطريق."
PNG = b"\x89PNG\r\n\x1a\n-card-bytes"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCAST_TEST_FB_TOKEN", GRAPH_TOKEN)


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph(token=GRAPH_TOKEN) as server:
        yield server


def make(tmp_path: Path, api_base: str, clients: Clients, **extra: Any) -> FacebookChannel:
    table = {"id": "fb-page", "kind": "facebook", "page_id": PAGE_ID, "token_env": "BCAST_TEST_FB_TOKEN",
             "api_base": api_base, "timeout_s": 2.0, **extra}
    return FacebookChannel(channel_config(tmp_path, **table), clients)


def post(text: str = TEXT, **fields: Any) -> OutboundMessage:
    return OutboundMessage(delivery_id=3, alert_id="A-1", channel_id="fb-page", language="ar+en", text=text,
                           **fields)


async def test_a_post_is_form_encoded_with_the_token_in_a_header_never_the_url(
    tmp_path: Path, fake: FakeGraph, clients: Clients
) -> None:
    async with make(tmp_path, fake.base_url, clients) as channel:
        receipt = await channel.send(post())

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", f"/v21.0/{PAGE_ID}/feed")
    assert request.form == {"message": TEXT}
    assert request.headers["Authorization"] == f"Bearer {GRAPH_TOKEN}"
    assert fake.tokens_in_urls == [] and GRAPH_TOKEN not in request.path + str(request.query)
    assert receipt.provider_id == fake.posts[0]["id"] and receipt.provider_id.startswith(f"{PAGE_ID}_")


async def test_an_update_comments_on_the_original_post(tmp_path: Path, fake: FakeGraph, clients: Clients) -> None:
    async with make(tmp_path, fake.base_url, clients) as channel:
        original = await channel.send(post())
        comment = await channel.send(post("تحديث: أعيد فتح الطريق", reply_to=original.provider_id))

    assert fake.requests[1].path == f"/v21.0/{original.provider_id}/comments"
    [made] = fake.comments
    assert made["parent"] == original.provider_id and made["message"] == "تحديث: أعيد فتح الطريق"
    assert comment.provider_id == made["id"] and len(fake.posts) == 1


@pytest.mark.parametrize(("code", "status", "reason", "retryable"), [
    (4, 400, Reason.RATE_LIMITED, True),  # application request limit
    (17, 400, Reason.RATE_LIMITED, True),  # user request limit
    (32, 403, Reason.RATE_LIMITED, True),  # page request limit
    (613, 400, Reason.RATE_LIMITED, True),  # calls within one hour exceeded
    (190, 400, Reason.AUTH, False),  # invalid or expired token
    (200, 403, Reason.AUTH, False),  # a missing permission
    (368, 400, Reason.BAD_REQUEST, False),  # blocked as abusive
    (100, 400, Reason.BAD_REQUEST, False),  # an invalid parameter
    (2, 503, Reason.SERVER, True),  # service temporarily unavailable
    (1, 500, Reason.SERVER, True),  # unknown error
])
async def test_every_graph_error_code_is_classified(tmp_path: Path, fake: FakeGraph, clients: Clients, code: int,
                                                    status: int, reason: Reason, retryable: bool) -> None:
    fake.script(graph_error(code, f"error {code}", status=status, subcode=463 if code == 190 else None))

    async with make(tmp_path, fake.base_url, clients) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(post())

    error = caught.value
    assert (error.reason, error.retryable, error.sent_maybe, error.http_status) == (reason, retryable, False, status)
    assert error.provider_code == (f"{code}/463" if code == 190 else str(code))
    assert "fbtrace_id AbCdEf123" in str(error)
    assert fake.posts == []


async def test_an_expired_token_says_so_plainly(tmp_path: Path, fake: FakeGraph, clients: Clients) -> None:
    fake.script(graph_error(190, "Error validating access token: Session has expired", subcode=463))
    async with make(tmp_path, fake.base_url, clients) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(post())
    assert "access token is invalid or expired: generate a new one" in str(caught.value)


async def test_a_duplicate_post_506_is_already_sent(tmp_path: Path, fake: FakeGraph, clients: Clients) -> None:
    async with make(tmp_path, fake.base_url, clients) as channel:
        first = await channel.send(post())
        again = await channel.send(post())  # as a resend after a lost answer would be

    assert len(fake.posts) == 1
    assert first.provider_id is not None
    # Before, the receipt carried no post id, so an update or cancel went up as a new post, not a comment.
    assert (again.provider_id, again.http_status, again.note) == (first.provider_id, 400, "duplicate: already posted")


def test_a_rate_limit_waits_for_retry_after_or_the_usage_headers() -> None:
    body = orjson.dumps({"error": {"message": "limit", "code": 17, "type": "OAuthException"}})
    usage = orjson.dumps({PAGE_ID: [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 5}]})
    by_usage = classify_graph(400, {"X-Business-Use-Case-Usage": usage.decode()}, body)
    by_header = classify_graph(400, {"Retry-After": "12", "X-Business-Use-Case-Usage": usage.decode()}, body)
    bare = classify_graph(400, {"X-Page-Usage": '{"call_count": 100}'}, body)
    assert isinstance(by_usage, DeliveryError) and by_usage.retry_after == 300.0
    assert isinstance(by_header, DeliveryError) and by_header.retry_after == 12.0
    assert isinstance(bare, DeliveryError) and bare.retry_after is None and bare.reason is Reason.RATE_LIMITED


def test_an_answer_that_is_not_json_is_judged_by_its_status() -> None:
    gateway = classify_graph(502, {}, b"<html>Bad Gateway</html>")
    unreadable = classify_graph(200, {}, b"<html>ok?</html>")
    assert isinstance(gateway, DeliveryError) and (gateway.reason, gateway.retryable) == (Reason.SERVER, True)
    assert isinstance(unreadable, DeliveryError) and unreadable.sent_maybe


async def test_after_a_timeout_reconcile_finds_the_post_so_it_is_not_posted_twice(
    tmp_path: Path, fake: FakeGraph, clients: Clients
) -> None:
    since = datetime.now(UTC)
    fake.script(graph_hang(30, accept=True))
    async with make(tmp_path, fake.base_url, clients, timeout_s=0.3) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(post())
        assert caught.value.sent_maybe
        found = await channel.reconcile(post(), since)
        absent = await channel.reconcile(post("نص لم يُنشر"), since)

    assert found is not None and found.provider_id == fake.posts[0]["id"]
    assert found.note == "reconciled: found on the Page"
    assert absent is None
    assert len(fake.posts) == 1
    listing = fake.requests[1]
    assert listing.method == "GET" and listing.path == f"/v21.0/{PAGE_ID}/feed" and "since" in listing.query


async def test_reconcile_of_a_follow_up_reads_the_original_posts_comments(
    tmp_path: Path, fake: FakeGraph, clients: Clients
) -> None:
    async with make(tmp_path, fake.base_url, clients) as channel:
        original = await channel.send(post())
        update = post("تحديث", reply_to=original.provider_id)
        await channel.send(update)
        found = await channel.reconcile(update, datetime.now(UTC))
    assert found is not None and found.provider_id == fake.comments[0]["id"]
    assert fake.requests[-1].path == f"/v21.0/{original.provider_id}/comments"


async def test_a_card_makes_a_photo_post_with_the_text_as_caption(tmp_path: Path, fake: FakeGraph,
                                                                  clients: Clients) -> None:
    async with make(tmp_path, fake.base_url, clients, card=True) as channel:
        receipt = await channel.send(post(payload=PNG))
        await channel.send(post("تحديث", payload=PNG, reply_to=receipt.provider_id))

    photo, comment = fake.requests
    assert photo.path == f"/v21.0/{PAGE_ID}/photos" and photo.headers["Content-Type"].startswith("multipart/")
    assert fake.posts[0]["photo"] == PNG and fake.posts[0]["message"] == TEXT
    assert receipt.provider_id == fake.posts[0]["id"]  # the post id, so updates comment on the post
    assert comment.path == f"/v21.0/{receipt.provider_id}/comments" and fake.comments[0]["photo"] == PNG


def _document(cards: dict[str, bytes]) -> AlertDocument:
    forms = {lang: {"headline": f"h-{lang}", "short": f"s-{lang}", "long": f"l-{lang}"} for lang in ("ar", "en")}
    return AlertDocument(alert_id="A-1", identifier="x/A-1", sender="x", sent="", expires="", status="Actual",
                         msg_type="Alert", references=None, template="t", cap={}, event={}, areas=(), forms=forms,
                         cards=cards)


def test_a_card_channel_carries_its_first_languages_card_when_combined(tmp_path: Path) -> None:
    combined = channel_config(tmp_path, id="c", kind="facebook", page_id=PAGE_ID, token_env="T", card=True)
    separate = channel_config(tmp_path, id="s", kind="facebook", page_id=PAGE_ID, token_env="T", card=True,
                              layout="separate")
    plain = channel_config(tmp_path, id="p", kind="facebook", page_id=PAGE_ID, token_env="T")
    cards = {"ar": b"ar-png", "en": b"en-png"}
    [both] = FacebookChannel.render(_document(cards).forms, combined)
    assert FacebookChannel.card_languages(combined) == ("ar",)
    assert FacebookChannel.card_languages(separate) == ("ar", "en")
    assert FacebookChannel.card_languages(plain) == ()
    assert FacebookChannel.payload(_document(cards), both, combined) == b"ar-png"
    assert FacebookChannel.payload(_document(cards), both, plain) is None


def test_shaping_headline_then_long_form_marker_once_combined_or_separate() -> None:
    forms = {"ar": {"headline": "[تمرين] عنوان", "short": "s", "long": "[تمرين] نص"},
             "en": {"headline": "[EXERCISE] Title", "short": "s", "long": "[EXERCISE] Body"}}
    [combined] = render_kind("facebook", forms, ("ar", "en"))
    assert combined.language == "ar+en"
    assert combined.text == "[تمرين] عنوان\n\nنص\n\n—————\n\n[EXERCISE] Title\n\nBody"
    assert (combined.unit, combined.limit) == ("characters", 63_206)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("page_id", "my-page", "numeric id"), ("api_version", "21", "Graph API version"),
    ("card", "yes", "true or false"), ("layout", "stacked", '"combined" or "separate"'),
])
def test_a_bad_key_names_itself(tmp_path: Path, key: str, value: str, message: str) -> None:
    table = {"id": "fb", "kind": "facebook", "page_id": PAGE_ID, "token_env": "T", key: value}
    with pytest.raises(ConfigError, match=f"channel 'fb': key '{key}'.*{message}"):
        channel_config(tmp_path, **table)


def test_a_numeric_page_id_may_be_a_toml_integer(tmp_path: Path) -> None:
    config = channel_config(tmp_path, id="fb", kind="facebook", page_id=int(PAGE_ID), token_env="T",
                            api_version="v22.0")
    assert FacebookChannel(config, Clients(recording=True)).options.page_id == PAGE_ID
