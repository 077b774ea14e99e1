"""WebhookChannel: what is particular to partner webhooks (the shared checks are in test_conformance.py).

Signed JSON POSTs against FakeWebhook on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.channels import webhook as webhook_module
from broadcaster.channels.base import AlertDocument, Clients, OutboundMessage
from broadcaster.channels.recording import RecordedResponse
from broadcaster.channels.registry import default_config
from broadcaster.channels.webhook import (
    WebhookChannel,
    classify_webhook,
    sign,
    target_url,
    verify,
)
from broadcaster.errors import DeliveryError, Reason
from broadcaster.templates.render import Rendered
from tests.fakes.server import Step
from tests.fakes.webhook import FakeWebhook, webhook_error
from tests.support import channel_config

SECRET = "whsec-PARTNER-SECRET-91c4e2-do-not-leak"
PAYLOAD = {"alert_id": "A-1", "headline": {"ar": "تحذير من الفيضانات", "en": "Flood warning"}}


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCAST_TEST_HOOK_SECRET", SECRET)


@pytest.fixture
async def fake() -> AsyncIterator[FakeWebhook]:
    async with FakeWebhook(SECRET) as server:
        yield server


def make_channel(tmp_path: Path, api_base: str | None, clients: Clients, **extra: Any) -> WebhookChannel:
    table: dict[str, Any] = {
        "id": "partner-hook",
        "kind": "webhook",
        "url": "https://partner.example/alerts/v1?source=broadcaster",
        "secret_env": "BCAST_TEST_HOOK_SECRET",
        "timeout_s": 2.0,
    }
    if api_base is not None:
        table["api_base"] = api_base
    table.update(extra)
    return WebhookChannel(channel_config(tmp_path, **table), clients)


@pytest.fixture
async def channel(tmp_path: Path, fake: FakeWebhook, creds: None, clients: Clients) -> AsyncIterator[WebhookChannel]:
    async with make_channel(tmp_path, fake.base_url, clients) as ch:
        yield ch


def hook(payload: Any = PAYLOAD, delivery_id: int = 7) -> OutboundMessage:
    return OutboundMessage(
        delivery_id=delivery_id, alert_id="A-1", channel_id="partner-hook", language="ar+en", text="",
        payload=orjson.dumps(payload) if payload is not None else None,
    )


async def test_send_signs_and_delivers(channel: WebhookChannel, fake: FakeWebhook) -> None:
    receipt = await channel.send(hook())

    [delivery] = fake.deliveries
    assert delivery.signature_ok
    assert delivery.json == PAYLOAD
    assert delivery.idempotency_key == "A-1/7"
    assert delivery.path == "/alerts/v1"
    assert delivery.headers["Content-Type"] == "application/json"
    assert receipt.provider_id == delivery.event_id and receipt.http_status == 200
    [request] = fake.requests
    assert request.query == {"source": "broadcaster"}
    assert verify(SECRET.encode(), request.headers["X-Broadcaster-Timestamp"], request.body,
                  request.headers["X-Broadcaster-Signature"])


async def test_provider_id_none_without_json_id(channel: WebhookChannel, fake: FakeWebhook) -> None:
    fake.script(Step(status=202, body={"ok": True}))
    receipt = await channel.send(hook())
    assert receipt.provider_id is None and receipt.http_status == 202


def test_sign_and_verify() -> None:
    body = orjson.dumps(PAYLOAD)
    now = 1_700_000_000
    signature = sign(b"k", now, body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify(b"k", now, body, signature, now=now + 10)
    assert verify(b"k", str(now), body, signature, now=now)
    assert not verify(b"k", now, body + b" ", signature, now=now)  # tampered body
    assert not verify(b"k", now, body.replace(b"Flood", b"Fl00d"), signature, now=now)
    assert not verify(b"other", now, body, signature, now=now)  # wrong secret
    assert not verify(b"k", now + 1, body, signature, now=now)  # timestamp is signed too
    assert not verify(b"k", now, body, signature, now=now + 301)  # too old: a replay
    assert not verify(b"k", now, body, signature, now=now - 301)  # from the future
    assert verify(b"k", now, body, signature, now=now + 3000, max_age_s=3600)
    assert not verify(b"k", "soon", body, signature, now=now)
    assert not verify(b"k", now, body, "sha256=zz", now=now)
    assert not verify(b"k", now, body, "sha256=é", now=now)


async def test_fake_flags_a_stale_signature(tmp_path: Path, fake: FakeWebhook, creds: None, clients: Clients) -> None:
    config = make_channel(tmp_path, fake.base_url, clients).config
    async with WebhookChannel(config, clients, clock=lambda: time.time() - 3600) as ch:
        await ch.send(hook())
    assert fake.deliveries[0].signature_ok is False


async def test_strict_partner_refuses_wrong_secret(tmp_path: Path, creds: None, clients: Clients) -> None:
    async with FakeWebhook("a-different-secret", reject_bad_signature=True) as server:
        async with make_channel(tmp_path, server.base_url, clients) as ch:
            with pytest.raises(DeliveryError) as caught:
                await ch.send(hook())
        assert server.deliveries == []
    assert (caught.value.reason, caught.value.retryable) == (Reason.AUTH, False)


@pytest.mark.parametrize(
    ("step", "reason", "retryable", "retry_after", "sent_maybe"),
    [
        (webhook_error(429, retry_after=7), Reason.RATE_LIMITED, True, 7.0, False),
        (webhook_error(429), Reason.RATE_LIMITED, True, None, False),
        (webhook_error(503, retry_after=30), Reason.SERVER, True, 30.0, False),
        (webhook_error(408), Reason.TIMEOUT, True, None, False),
        (webhook_error(500), Reason.SERVER, True, None, True),
        (webhook_error(502, body="<html>bad gateway</html>"), Reason.SERVER, True, None, True),
        (webhook_error(504), Reason.SERVER, True, None, True),
        (webhook_error(400), Reason.BAD_REQUEST, False, None, False),
        (webhook_error(401), Reason.AUTH, False, None, False),
        (webhook_error(403), Reason.AUTH, False, None, False),
        (webhook_error(404), Reason.BAD_REQUEST, False, None, False),
        (webhook_error(409), Reason.BAD_REQUEST, False, None, False),
        (webhook_error(422, retry_after=5), Reason.BAD_REQUEST, False, None, False),
    ],
)
async def test_classification_table(
    channel: WebhookChannel, fake: FakeWebhook, step: Step, reason: Reason, retryable: bool,
    retry_after: float | None, sent_maybe: bool,
) -> None:
    fake.script(step)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(hook())
    err = caught.value
    assert (err.reason, err.retryable, err.retry_after, err.sent_maybe) == (
        reason, retryable, retry_after, sent_maybe,
    )
    assert err.http_status == step.status
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_permanent_and_not_followed(channel: WebhookChannel, fake: FakeWebhook, status: int) -> None:
    fake.script(webhook_error(status, location="/moved-here"))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(hook())
    assert (caught.value.reason, caught.value.retryable) == (Reason.BAD_REQUEST, False)
    assert "/moved-here" in str(caught.value)
    assert [r.path for r in fake.requests] == ["/alerts/v1"]
    assert fake.deliveries == []


async def test_resend_keeps_idempotency_key(channel: WebhookChannel, fake: FakeWebhook) -> None:
    fake.script(webhook_error(500, accept=True))
    with pytest.raises(DeliveryError):
        await channel.send(hook())
    await channel.send(hook())
    assert fake.keys == ["A-1/7", "A-1/7"]


async def test_missing_payload_is_bad_request(channel: WebhookChannel, fake: FakeWebhook) -> None:
    with pytest.raises(DeliveryError) as caught:
        await channel.send(hook(payload=None))
    assert (caught.value.reason, caught.value.retryable) == (Reason.BAD_REQUEST, False)
    assert fake.requests == []


def test_channel_policy() -> None:
    assert WebhookChannel.can_reconcile is False
    assert WebhookChannel.kind == "webhook"


async def test_on_unknown_is_resend(channel: WebhookChannel) -> None:
    assert channel.on_unknown == "resend"


def test_target_url_replaces_scheme_and_host_only() -> None:
    url = "https://partner.example/alerts/v1?x=1"
    assert target_url(url, None) == url
    assert target_url(url, "http://127.0.0.1:8081") == "http://127.0.0.1:8081/alerts/v1?x=1"
    assert target_url(url, "http://proxy:9/prefix/") == "http://proxy:9/prefix/alerts/v1?x=1"


def test_classify_success_and_errors_directly() -> None:
    ok = classify_webhook(201, {}, b'{"id": 42}')
    assert not isinstance(ok, DeliveryError) and ok.provider_id == "42"
    err = classify_webhook(exc=TimeoutError())
    assert isinstance(err, DeliveryError) and err.sent_maybe and err.reason is Reason.TIMEOUT
    with pytest.raises(TypeError):
        classify_webhook(exc=KeyError("x"))


DOCUMENT = AlertDocument(
    alert_id="20260101-000000-abcdef", identifier="alerts.example.gov/20260101-000000-abcdef",
    sender="alerts.example.gov", sent="2026-01-01T04:00:00+04:00", expires="2026-01-01T10:00:00+04:00",
    status="Actual", msg_type="Update", references="20251231-230000-fedcba", template="road_closure",
    cap={"category": "Transport", "urgency": "Immediate"}, event={"ar": "إغلاق طريق", "en": "Road closure"},
    areas=("DXB-MARINA",),
    forms={lang: {"headline": f"h-{lang}", "short": f"s-{lang}", "long": f"l-{lang}"} for lang in ("ar", "en")},
)


def test_the_payload_is_the_partner_contract_byte_for_byte() -> None:
    rendered = Rendered("ar+en", "l-ar\n\nl-en", 10, 65536, "bytes")
    body = WebhookChannel.payload(DOCUMENT, rendered, default_config("webhook"))
    assert list(orjson.loads(body)) == [
        "alert_id", "identifier", "sender", "sent", "expires", "status", "msgType", "references", "template",
        "cap", "event", "areas", "info",
    ]
    assert orjson.loads(body) == {
        "alert_id": DOCUMENT.alert_id, "identifier": DOCUMENT.identifier, "sender": "alerts.example.gov",
        "sent": "2026-01-01T04:00:00+04:00", "expires": "2026-01-01T10:00:00+04:00", "status": "Actual",
        "msgType": "Update", "references": "20251231-230000-fedcba", "template": "road_closure",
        "cap": {"category": "Transport", "urgency": "Immediate"}, "event": {"ar": "إغلاق طريق", "en": "Road closure"},
        "areas": ["DXB-MARINA"],
        "info": [{"language": "ar", "headline": "h-ar", "short": "s-ar", "long": "l-ar"},
                 {"language": "en", "headline": "h-en", "short": "s-en", "long": "l-en"}],
    }


def test_the_long_forms_are_measured_in_utf8_bytes(tmp_path: Path) -> None:
    config = make_channel(tmp_path, None, Clients(recording=True)).config
    [message] = WebhookChannel.render(DOCUMENT.forms, config)
    assert (message.language, message.text) == ("ar+en", "l-ar\n\nl-en")
    assert (message.length, message.unit, message.limit) == (10, "bytes", 64 * 1024)
    assert WebhookChannel.measure_piece("زايد") == 8


async def test_a_dry_run_signs_each_post_as_a_real_one_would_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, Mapping[str, Any]]] = []
    real = webhook_module._recorded_answer

    def spy(number: int, method: str, url: str, request: Mapping[str, Any]) -> RecordedResponse:
        seen.append((url, request))
        return real(number, method, url, request)

    monkeypatch.setattr(webhook_module, "_recorded_answer", spy)
    monkeypatch.setenv("BCAST_TEST_HOOK_SECRET", SECRET)
    async with Clients(recording=True, latency_s=0) as clients, make_channel(tmp_path, None, clients) as ch:
        receipt = await ch.send(hook())

    assert receipt.provider_id == "dry-run-evt_1"
    [(url, request)] = seen
    assert url == "https://partner.example/alerts/v1?source=broadcaster"
    headers = request["headers"]
    assert headers["Idempotency-Key"] == "A-1/7"
    assert verify(SECRET.encode(), headers["X-Broadcaster-Timestamp"], request["data"],
                  headers["X-Broadcaster-Signature"])
