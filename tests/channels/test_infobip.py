"""The sms kind with ``provider = "infobip"``: what is particular to Infobip (the shared checks are in
test_conformance.py, case ``sms-infobip``), and the failover keys of the kind.

The real infobip-api-python-client SDK against FakeInfobip on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broadcaster.channels.base import Clients, OutboundMessage
from broadcaster.channels.infobip_api import message_id_of
from broadcaster.channels.registry import KINDS, build_channels
from broadcaster.channels.sms import InfobipSmsChannel, InfobipSmsOptions, SmsChannel
from broadcaster.config import CircuitOptions
from broadcaster.errors import ConfigError, DeliveryError, Reason
from tests.fakes.infobip import FakeInfobip, hang, infobip_error, refused
from tests.fakes.server import Step
from tests.support import channel_config, make_config

API_KEY = "ibkey-SMS-SECRET-2b8d41-do-not-leak"
TO = "+971501234567"
ARABIC = "تحذير: فيضانات على «شارع الشيخ زايد». ابتعدوا عن الأودية."
TWILIO = {"kind": "sms", "account_sid_env": "SID", "auth_token_env": "TOK", "from": "+15005550006",
          "recipients": "r.csv"}
INFOBIP = {"kind": "sms", "provider": "infobip", "base_url": "https://xxxx.api.infobip.com", "api_key_env": "IB",
           "from": "CivilDefence", "recipients": "r.csv"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeInfobip]:
    async with FakeInfobip(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def channel(tmp_path: Path, fake: FakeInfobip, clients: Clients,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[InfobipSmsChannel]:
    monkeypatch.setenv("BCAST_TEST_INFOBIP_KEY", API_KEY)
    config = channel_config(tmp_path, id="sms-infobip", kind="sms", provider="infobip", base_url=fake.base_url,
                            api_key_env="BCAST_TEST_INFOBIP_KEY", recipients="recipients.csv", timeout_s=2.0,
                            **{"from": "CivilDefence"})
    [built] = build_channels([config], clients, mode="live")
    assert isinstance(built, InfobipSmsChannel)
    async with built as ch:
        yield ch


def sms(text: str = ARABIC, to: str | None = TO, delivery_id: int = 1) -> OutboundMessage:
    return OutboundMessage(delivery_id=delivery_id, alert_id="A-1", channel_id="sms-infobip", language="ar",
                           text=text, recipient=to)


async def test_send_posts_our_message_id_the_sender_and_the_arabic_text(channel: InfobipSmsChannel,
                                                                       fake: FakeInfobip) -> None:
    receipt = await channel.send(sms())

    [request] = fake.requests
    assert (request.method, request.path) == ("POST", "/sms/3/messages")
    assert request.headers["Authorization"] == f"App {API_KEY}"
    [message] = request.json["messages"]
    assert message["sender"] == "CivilDefence"
    assert message["destinations"] == [{"to": TO, "messageId": "bc-A-1-1"}]
    assert message["content"]["text"] == ARABIC
    assert (receipt.provider_id, receipt.http_status, receipt.note) == ("bc-A-1-1", 200, "PENDING")
    assert message_id_of(sms()) == message_id_of(sms()) != message_id_of(sms(delivery_id=2))


@pytest.mark.parametrize(("step", "reason", "retryable", "sent_maybe", "code"), [
    (infobip_error(429, "E429", retry_after=3), Reason.RATE_LIMITED, True, False, "E429"),
    (infobip_error(401, "UNAUTHORIZED", legacy=True), Reason.AUTH, False, False, "UNAUTHORIZED"),
    (infobip_error(403, "E403"), Reason.AUTH, False, False, "E403"),
    (infobip_error(400, "E400", "Request cannot be processed."), Reason.BAD_REQUEST, False, False, "E400"),
    (infobip_error(500, "E500"), Reason.SERVER, True, True, "E500"),
    (infobip_error(503, "E503"), Reason.SERVER, True, False, "E503"),
    (Step(status=502, body="<html>Bad gateway</html>"), Reason.SERVER, True, True, None),
    (refused("REJECTED_DESTINATION"), Reason.RECIPIENT_GONE, False, False, "REJECTED_DESTINATION"),
    (refused("REJECTED_NOT_ENOUGH_CREDITS"), Reason.BAD_REQUEST, False, False, "REJECTED_NOT_ENOUGH_CREDITS"),
    (refused("UNDELIVERABLE_NOT_DELIVERED", group="UNDELIVERABLE"), Reason.RECIPIENT_GONE, False, False,
     "UNDELIVERABLE_NOT_DELIVERED"),
])
async def test_errors_map_into_the_taxonomy(channel: InfobipSmsChannel, fake: FakeInfobip, step: Step,
                                            reason: Reason, retryable: bool, sent_maybe: bool,
                                            code: str | None) -> None:
    fake.script(step)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(sms())
    error = caught.value
    assert (error.reason, error.retryable, error.sent_maybe, error.provider_code) == (reason, retryable, sent_maybe,
                                                                                      code)
    assert len(fake.requests) == 1, "the SDK must not retry on its own"
    if reason is Reason.RATE_LIMITED:
        assert error.retry_after == 3.0


async def test_reconcile_finds_a_message_whose_answer_was_lost(channel: InfobipSmsChannel, fake: FakeInfobip) -> None:
    since = datetime.now(UTC)
    fake.script(hang(30, accept=True))
    channel.config = dataclasses.replace(channel.config, timeout_s=0.3)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(sms())
    assert caught.value.sent_maybe and len(fake.messages) == 1

    found = await channel.reconcile(sms(), since=since)

    assert found is not None and found.provider_id == "bc-A-1-1"
    assert found.note == "reconciled: DELIVERED_TO_HANDSET"
    logs = fake.requests[-1]
    assert (logs.method, logs.path, logs.query["messageId"]) == ("GET", "/sms/3/logs", "bc-A-1-1")


async def test_reconcile_is_none_for_a_message_never_taken_in(channel: InfobipSmsChannel,
                                                              fake: FakeInfobip) -> None:
    await channel.send(sms(delivery_id=2))  # another delivery to the same phone is not this one

    assert await channel.reconcile(sms(delivery_id=1), since=datetime.now(UTC) - timedelta(minutes=5)) is None


async def test_reconcile_that_cannot_ask_is_a_delivery_error(channel: InfobipSmsChannel, fake: FakeInfobip) -> None:
    fake.script(infobip_error(503))
    with pytest.raises(DeliveryError) as caught:
        await channel.reconcile(sms(), since=datetime.now(UTC))
    assert (caught.value.reason, caught.value.retryable) == (Reason.SERVER, True)


def test_provider_picks_the_class_and_its_keys(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    config = make_config(tmp_path, [{"id": "a", **TWILIO}, {"id": "b", **INFOBIP, "max_segments": 2}])
    twilio, infobip = config.channels
    assert KINDS["sms"].serving(twilio) is SmsChannel
    assert KINDS["sms"].serving(infobip) is InfobipSmsChannel
    assert isinstance(infobip.options, InfobipSmsOptions) and infobip.options.max_segments == 2
    assert infobip.secret_env_names() == {"api_key_env": "IB"}


@pytest.mark.parametrize(("table", "message"), [
    ({**INFOBIP, "account_sid_env": "SID"}, "key 'account_sid_env' is not for provider 'infobip'"),
    ({**TWILIO, "base_url": "https://xxxx.api.infobip.com"}, "key 'base_url' is not for provider 'twilio'"),
    ({k: v for k, v in INFOBIP.items() if k != "base_url"}, "key 'base_url' is required"),
    ({**INFOBIP, "base_url": "http://xxxx.api.infobip.com"}, "key 'base_url': must be https"),
    ({**INFOBIP, "base_url": "https://xxxx.api.infobip.com/sms/3"}, "key 'base_url': the API base only"),
    ({**INFOBIP, "provider": "nexmo"}, "key 'provider': must be \"twilio\" or \"infobip\""),
    ({**TWILIO, "circuit": {"failures": 3}}, "key 'circuit': only a channel with a 'fallback'"),
])
def test_bad_keys_are_named(tmp_path: Path, table: dict[str, Any], message: str) -> None:
    (tmp_path / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="channel 'a'") as caught:
        make_config(tmp_path, [{"id": "a", **table}])
    assert message in str(caught.value)


def test_circuit_keys_parse_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    config = make_config(tmp_path, [
        {"id": "a", **TWILIO, "fallback": "b", "circuit": {"failures": 3, "cooldown_s": 0.5}},
        {"id": "b", **INFOBIP},
    ])
    primary, backup = config.channels
    assert primary.fallback == "b" and backup.fallback is None
    assert primary.circuit == CircuitOptions(failures=3, window_s=30.0, cooldown_s=0.5)
    assert config.fallback_only() == {"b"}
    assert [c.id for c in config.with_fallbacks([primary])] == ["a", "b"]


@pytest.mark.parametrize(("circuit", "message"), [
    ({"failures": 0}, "failures must be a whole number"),
    ({"window_s": -1}, "window_s must be a number of seconds"),
    ({"cooldown_s": "1m"}, "cooldown_s must be a number of seconds"),
    ({"failure": 3}, "must be a table of failures, window_s and cooldown_s"),
])
def test_bad_circuit_is_named(tmp_path: Path, circuit: dict[str, Any], message: str) -> None:
    (tmp_path / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="key 'circuit'") as caught:
        make_config(tmp_path, [{"id": "a", **TWILIO, "fallback": "b", "circuit": circuit}, {"id": "b", **INFOBIP}])
    assert message in str(caught.value)


@pytest.mark.parametrize(("channels", "message"), [
    ([{"id": "a", **TWILIO, "fallback": "a"}], "a channel cannot be its own fallback"),
    ([{"id": "a", **TWILIO, "fallback": "zz"}], "no channel with id 'zz'"),
    ([{"id": "a", **TWILIO, "fallback": "w"},
      {"id": "w", "kind": "webhook", "url": "https://p.example/h", "secret_env": "H"}],
     "channel 'w' is a webhook channel; a fallback must be sms too"),
    ([{"id": "a", **TWILIO, "fallback": "b"}, {"id": "b", **INFOBIP, "fallback": "a"}],
     "channel 'b' has a fallback of its own ('a')"),
    ([{"id": "a", **TWILIO, "fallback": "b"}, {"id": "b", **INFOBIP, "exercise": True}],
     "channel 'b' has exercise = true, this one false"),
    ([{"id": "a", **TWILIO, "fallback": "b"}, {"id": "b", **INFOBIP, "languages": ["ar"]}],
     "channel 'b' sends ['ar'], this one ['ar', 'en']"),
])
def test_a_bad_fallback_names_the_channel_and_the_key(tmp_path: Path, channels: list[dict[str, Any]],
                                                      message: str) -> None:
    (tmp_path / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="channel 'a': key 'fallback'") as caught:
        make_config(tmp_path, channels)
    assert message in str(caught.value)
