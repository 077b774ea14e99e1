"""SmsChannel: what is particular to Twilio SMS (the shared checks are in test_conformance.py).

The real twilio SDK against FakeTwilio on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twilio.rest import Client

from broadcaster.channels.base import Clients, OutboundMessage
from broadcaster.channels.sms import SmsChannel, SmsOptions
from broadcaster.channels.twilio_errors import classify_twilio
from broadcaster.errors import DeliveryError, Reason
from tests.fakes.server import Step
from tests.fakes.twilio import FakeTwilio, hang, twilio_error
from tests.support import channel_config

ACCOUNT_SID = "AC" + "5ec7e75ec7e7" * 2 + "5ec7e75e"
AUTH_TOKEN = "tok-SMS-SECRET-7f3a9c-do-not-leak"
FROM = "+15005550006"
SERVICE_SID = "MG" + "0123456789abcdef" * 2
TO = "+971501234567"
ARABIC = "تحذير: فيضانات على «شارع الشيخ زايد». ابتعدوا عن الأودية. Flood warning: keep away from wadis."


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCAST_TEST_TWILIO_SID", ACCOUNT_SID)
    monkeypatch.setenv("BCAST_TEST_TWILIO_TOKEN", AUTH_TOKEN)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as server:
        yield server


def make_channel(tmp_path: Path, base_url: str, clients: Clients, **extra: Any) -> SmsChannel:
    table: dict[str, Any] = {
        "id": "sms-residents",
        "kind": "sms",
        "account_sid_env": "BCAST_TEST_TWILIO_SID",
        "auth_token_env": "BCAST_TEST_TWILIO_TOKEN",
        "recipients": "recipients.csv",
        "api_base": base_url,
        "timeout_s": 2.0,
    }
    if "messaging_service_sid" not in extra:
        table["from"] = FROM
    table.update(extra)
    return SmsChannel(channel_config(tmp_path, **table), clients)


@pytest.fixture
async def channel(tmp_path: Path, fake: FakeTwilio, creds: None, clients: Clients) -> AsyncIterator[SmsChannel]:
    async with make_channel(tmp_path, fake.base_url, clients) as ch:
        yield ch


def sms(text: str = ARABIC, to: str | None = TO, delivery_id: int = 1) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=delivery_id, alert_id="A-1", channel_id="sms-residents", language="ar", text=text,
        recipient=to,
    )


async def test_send_keeps_arabic_body_and_returns_sid(channel: SmsChannel, fake: FakeTwilio) -> None:
    receipt = await channel.send(sms())

    assert receipt.http_status == 201
    assert receipt.provider_id is not None and receipt.provider_id.startswith("SM")
    assert len(receipt.provider_id) == 34
    [stored] = fake.messages
    assert stored["sid"] == receipt.provider_id
    assert stored["body"] == ARABIC
    assert stored["to"] == TO and stored["from"] == FROM
    [post] = [r for r in fake.requests if r.method == "POST"]
    assert post.form["Body"] == ARABIC
    assert post.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


async def test_messaging_service_sid_replaces_from(
    tmp_path: Path, fake: FakeTwilio, creds: None, clients: Clients
) -> None:
    async with make_channel(tmp_path, fake.base_url, clients, messaging_service_sid=SERVICE_SID) as ch:
        await ch.send(sms())
    [post] = fake.requests
    assert post.form["MessagingServiceSid"] == SERVICE_SID
    assert "From" not in post.form
    assert fake.messages[0]["messaging_service_sid"] == SERVICE_SID


@pytest.mark.parametrize(
    ("step", "reason", "retryable", "code"),
    [
        (twilio_error(429, 20429, "Too Many Requests"), Reason.RATE_LIMITED, True, "20429"),
        (twilio_error(400, 20429, "Too many requests"), Reason.RATE_LIMITED, True, "20429"),
        (twilio_error(400, 21211, "Invalid 'To' Phone Number"), Reason.RECIPIENT_GONE, False, "21211"),
        (twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"), Reason.RECIPIENT_GONE, False,
         "21610"),
        (twilio_error(400, 21612, "Not reachable"), Reason.RECIPIENT_GONE, False, "21612"),
        (twilio_error(400, 21614, "Not a mobile number"), Reason.RECIPIENT_GONE, False, "21614"),
        (twilio_error(401, 20003, "Authenticate"), Reason.AUTH, False, "20003"),
        (twilio_error(403, 20003, "Permission denied"), Reason.AUTH, False, "20003"),
        (twilio_error(400, 21408, "Permission to send to this region is not enabled"), Reason.BAD_REQUEST,
         False, "21408"),
        (twilio_error(404, 20404, "Not found"), Reason.BAD_REQUEST, False, "20404"),
        (twilio_error(500, 20500, "Internal Server Error"), Reason.SERVER, True, "20500"),
        (twilio_error(503, 20503, "Service Unavailable"), Reason.SERVER, True, "20503"),
        # A 5xx with a body that is not JSON at all (a load balancer page).
        (Step(status=502, body="<html>Bad Gateway</html>"), Reason.SERVER, True, "502"),
        # RFC 9457 problem details: the SDK raises TwilioServiceException instead.
        (Step(status=400, body={"type": "https://www.twilio.com/docs/errors/21211", "title": "Invalid To",
                                "status": 400, "code": 21211}), Reason.RECIPIENT_GONE, False, "21211"),
        (Step(status=429, body={"type": "https://www.twilio.com/docs/errors/20429", "title": "Too many",
                                "status": 429, "code": 20429}), Reason.RATE_LIMITED, True, "20429"),
    ],
)
async def test_classification_through_the_sdk(
    channel: SmsChannel, fake: FakeTwilio, step: Step, reason: Reason, retryable: bool, code: str
) -> None:
    fake.script(step)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(sms())
    err = caught.value
    assert (err.reason, err.retryable, err.provider_code) == (reason, retryable, code)
    assert err.http_status == step.status
    assert fake.posts == 1
    assert "\033[" not in str(err)  # never the SDK's coloured tty text


async def test_rate_limit_without_retry_after(channel: SmsChannel, fake: FakeTwilio) -> None:
    fake.script(twilio_error(429, 20429))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(sms())
    assert caught.value.retry_after is None


async def test_server_error_is_one_request_no_sdk_retry(channel: SmsChannel, fake: FakeTwilio) -> None:
    fake.script(twilio_error(500, 20500), twilio_error(500, 20500), twilio_error(500, 20500))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(sms())
    assert caught.value.retryable
    assert fake.posts == 1
    assert fake.messages == []


async def test_wrong_token_is_auth_permanent(tmp_path: Path, creds: None, clients: Clients) -> None:
    async with FakeTwilio(account_sid=ACCOUNT_SID, auth_token="some-other-token") as server:
        with pytest.raises(DeliveryError) as caught:
            async with make_channel(tmp_path, server.base_url, clients) as ch:
                await ch.send(sms())
    assert (caught.value.reason, caught.value.retryable) == (Reason.AUTH, False)


async def test_missing_recipient_is_bad_request(channel: SmsChannel, fake: FakeTwilio) -> None:
    with pytest.raises(DeliveryError) as caught:
        await channel.send(sms(to=None))
    assert caught.value.reason is Reason.BAD_REQUEST and not caught.value.retryable
    assert fake.requests == []


async def test_edge_and_region_env_cannot_redirect(
    tmp_path: Path, fake: FakeTwilio, creds: None, monkeypatch: pytest.MonkeyPatch, clients: Clients
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    # Control: an SDK client built the usual way does rewrite the host from these variables,
    # to a real Twilio host the loopback guard would refuse.
    plain = Client(ACCOUNT_SID, AUTH_TOKEN)
    rewritten = plain.get_hostname("https://api.twilio.com/2010-04-01/Accounts.json")
    assert rewritten == "https://api.sydney.au1.twilio.com/2010-04-01/Accounts.json"

    async with make_channel(tmp_path, fake.base_url, clients) as ch:
        receipt = await ch.send(sms())
    assert receipt.provider_id == fake.messages[0]["sid"]


async def test_reconcile_finds_a_sent_message(channel: SmsChannel) -> None:
    since = datetime.now(UTC)
    receipt = await channel.send(sms())
    found = await channel.reconcile(sms(), since)
    assert found is not None and found.provider_id == receipt.provider_id


async def test_reconcile_finds_message_whose_response_was_lost(
    tmp_path: Path, fake: FakeTwilio, creds: None, clients: Clients
) -> None:
    since = datetime.now(UTC)
    fake.script(hang(30, accept=True))
    async with make_channel(tmp_path, fake.base_url, clients, timeout_s=0.2) as ch:
        with pytest.raises(DeliveryError) as caught:
            await ch.send(sms())
        assert caught.value.sent_maybe
        [accepted] = fake.messages
        found = await ch.reconcile(sms(), since)
    assert found is not None and found.provider_id == accepted["sid"]


async def test_reconcile_finds_lost_message_after_a_scripted_failure(channel: SmsChannel, fake: FakeTwilio) -> None:
    since = datetime.now(UTC)
    fake.script(twilio_error(500, 20500, accept=True))
    with pytest.raises(DeliveryError):
        await channel.send(sms())
    found = await channel.reconcile(sms(), since)
    assert found is not None and found.provider_id == fake.messages[0]["sid"]


async def test_reconcile_none_for_number_without_message(channel: SmsChannel) -> None:
    since = datetime.now(UTC)
    await channel.send(sms())
    assert await channel.reconcile(sms(to="+971509999999"), since) is None


async def test_reconcile_none_for_other_body_or_older_message(channel: SmsChannel, fake: FakeTwilio) -> None:
    since = datetime.now(UTC)
    fake.seed(TO, ARABIC, date_created=since - timedelta(days=2))  # an earlier alert, same text
    await channel.send(sms(text="A different alert"))
    assert await channel.reconcile(sms(), since) is None


async def test_reconcile_ignores_other_sender(channel: SmsChannel, fake: FakeTwilio) -> None:
    since = datetime.now(UTC)
    fake.seed(TO, ARABIC, from_="+15005550001")
    assert await channel.reconcile(sms(), since) is None


async def test_reconcile_finds_still_queued_message(tmp_path: Path, creds: None, clients: Clients) -> None:
    # A queued message has no date_sent, so a DateSent> filter would miss it.
    async with FakeTwilio(account_sid=ACCOUNT_SID, sent_immediately=False) as server:
        async with make_channel(tmp_path, server.base_url, clients) as ch:
            since = datetime.now(UTC)
            receipt = await ch.send(sms())
            found = await ch.reconcile(sms(), since)
        [listing] = [r for r in server.requests if r.method == "GET"]
    assert found is not None and found.provider_id == receipt.provider_id
    assert listing.query["To"] == TO and listing.query["From"] == FROM
    assert not any(key.startswith("DateSent") for key in listing.query)


async def test_reconcile_pages_through_many_messages(channel: SmsChannel, fake: FakeTwilio) -> None:
    since = datetime.now(UTC) - timedelta(minutes=5)
    target = fake.seed(TO, ARABIC, date_created=since + timedelta(seconds=1))
    for i in range(2100):
        fake.seed(TO, f"other message {i}", date_created=since + timedelta(seconds=2))
    for i in range(500):
        fake.seed(f"+97150{i:07d}", ARABIC)
    found = await channel.reconcile(sms(), since)
    assert found is not None and found.provider_id == target["sid"]
    assert sum(1 for r in fake.requests if r.method == "GET") == 3


async def test_reconcile_errors_are_classified(channel: SmsChannel, fake: FakeTwilio) -> None:
    fake.script(twilio_error(503, 20503))
    with pytest.raises(DeliveryError) as caught:
        await channel.reconcile(sms(), datetime.now(UTC))
    assert (caught.value.reason, caught.value.retryable, caught.value.http_status) == (Reason.SERVER, True, 503)


async def test_fake_date_sent_filters_through_the_sdk(channel: SmsChannel, fake: FakeTwilio) -> None:
    now = datetime.now(UTC)
    old = fake.seed(TO, "old", date_created=now - timedelta(days=3))
    new = fake.seed(TO, "new", date_created=now)
    client = channel._client
    after = await client.messages.list_async(to=TO, date_sent_after=now - timedelta(hours=1))
    before = await client.messages.list_async(to=TO, date_sent_before=now - timedelta(days=1))
    assert [m.sid for m in after] == [new["sid"]]
    assert [m.sid for m in before] == [old["sid"]]
    assert fake.requests[0].query["DateSent>"].endswith("Z")


def test_classify_rejects_unknown_exceptions() -> None:
    with pytest.raises(TypeError):
        classify_twilio(KeyError("x"))


async def test_the_status_callback_of_the_run_asks_twilio_for_receipts(
    tmp_path: Path, fake: FakeTwilio, creds: None
) -> None:
    callback = "https://alerts.example.gov/twilio/status"
    async with (
        Clients(recording=False, status_callback=callback) as clients,
        make_channel(tmp_path, fake.base_url, clients) as ch,
    ):
        await ch.send(sms())
    assert fake.requests[0].form["StatusCallback"] == callback


async def test_a_dry_run_answers_as_twilio_and_reconciles_to_nothing(tmp_path: Path, creds: None) -> None:
    async with Clients(recording=True, latency_s=0) as clients, make_channel(tmp_path, "http://127.0.0.1:1",
                                                                              clients) as ch:
        receipt = await ch.send(sms())
        found = await ch.reconcile(sms(), datetime.now(UTC))
        with pytest.raises(DeliveryError) as caught:
            await ch.send(sms(to=None))

    # The SDK parsed the recorded Message: a 201 with a real-looking SM sid.
    assert receipt.http_status == 201
    assert receipt.provider_id is not None and receipt.provider_id.startswith("dry-run-SM")
    assert len(receipt.provider_id) == len("dry-run-") + 34
    assert found is None  # the recorded list page is empty
    assert caught.value.reason is Reason.BAD_REQUEST  # the adapter's own check runs in a rehearsal too
    assert clients.recorded == {"sms": 2}


def test_segments_are_measured_against_max_segments(tmp_path: Path) -> None:
    config = channel_config(tmp_path, id="s", kind="sms", account_sid_env="BCAST_TEST_TWILIO_SID",
                            auth_token_env="BCAST_TEST_TWILIO_TOKEN", **{"from": FROM},
                            recipients="r.csv", max_segments=2)
    assert config.options_of(SmsOptions).max_segments == 2
    forms = {"ar": {"headline": "-", "short": "ب" * 140, "long": "-"},
             "en": {"headline": "-", "short": "W" * 160, "long": "-"}}
    ar, en = SmsChannel.render(forms, config)
    assert (ar.length, ar.encoding, ar.limit, ar.fits) == (3, "UCS-2", 2, False)
    assert (en.length, en.encoding, en.fits) == (1, "GSM-7", True)
    assert SmsChannel.measure_piece("") == 0 and SmsChannel.measure_piece("{") == 2  # an escape is two septets
