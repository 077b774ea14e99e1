"""Twilio status callbacks: signed ones move an SMS to delivered or undelivered once; forged ones are 403."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from broadcaster.service.receipts import signature_ok
from tests.engine.providers import SECRETS, Providers
from tests.service.conftest import drill_channels
from tests.service.support import PUBLIC_URL, Api, rewrite_config, serving, without_verify_line
from tests.support import make_config

CALLBACK = f"{PUBLIC_URL}/twilio/status"


def signed(form: dict[str, str], *, token: str = SECRETS["TWILIO_AUTH_TOKEN"], url: str = CALLBACK) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def receipt(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
            "AccountSid": SECRETS["TWILIO_ACCOUNT_SID"], "To": "+971500000001", "From": "+15005550006",
            "ApiVersion": "2010-04-01", **extra}


async def callback(api: Api, form: dict[str, str], signature: str | None) -> int:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    async with api.client.post("/twilio/status", data=form, headers=headers) as response:
        return response.status


async def fire_sms(api: Api) -> tuple[str, list[str]]:
    status, body = await api.fire("officer", mode="live", channels="kind:sms")
    assert status == 202, body
    await api.settle()
    sids = [d.provider_id for d in await api.app.store.alerts.deliveries(body["alert_id"])]
    assert all(sids)
    return body["alert_id"], [str(s) for s in sids]


async def test_forged_and_unsigned_callbacks_are_refused_and_change_nothing(api: Api) -> None:
    alert_id, (sid, *_) = await fire_sms(api)
    form = receipt(sid, "delivered")
    attempts: list[tuple[dict[str, Any], str | None]] = [
        (form, None),  # unsigned
        (form, ""),  # empty signature
        (form, signed(form, token="not-the-auth-token")),  # signed with the wrong key
        (form, signed(form, url="http://127.0.0.1:8080/twilio/status")),  # signed for another URL
        ({**form, "MessageStatus": "undelivered"}, signed(form)),  # altered after signing
        (receipt(sid, "delivered", AccountSid="AC" + "9" * 32), signed(receipt(sid, "delivered",
                                                                              AccountSid="AC" + "9" * 32))),
    ]
    for form_sent, signature in attempts:
        assert await callback(api, form_sent, signature) == 403, (form_sent, signature)
    assert await api.app.store.receipts.count(sid) == 0
    _status, view = await api.get(f"/api/alerts/{alert_id}")
    assert view["counts"]["sms-residents"] == {"sent": 3}


async def test_a_valid_callback_is_recorded_once_even_when_replayed(api: Api) -> None:
    alert_id, (first, second, third) = await fire_sms(api)
    delivered = receipt(first, "delivered")
    for _ in range(3):  # Twilio retries, and an attacker may replay a captured request
        assert await callback(api, delivered, signed(delivered)) == 204
    assert await api.app.store.receipts.count(first) == 1
    failed = receipt(second, "undelivered", ErrorCode="30003")
    assert await callback(api, failed, signed(failed)) == 204
    # A late interim status never hides a final one.
    late = receipt(first, "sent")
    assert await callback(api, late, signed(late)) == 204
    _, view = await api.get(f"/api/alerts/{alert_id}")
    assert view["counts"]["sms-residents"] == {"delivered": 1, "undelivered": 1, "sent": 1}
    states = {d["provider_id"]: (d["state"], d["receipt"]) for d in view["deliveries"]}
    assert states == {first: ("delivered", "delivered"), second: ("undelivered", "undelivered"),
                      third: ("sent", None)}
    # The engine's own state is untouched: follow-ups still reach every phone that was sent to.
    assert {d.state for d in await api.app.store.alerts.deliveries(alert_id)} == {"sent"}
    _status, metrics = await api.get("/metrics")
    text = metrics.decode()
    node = api.service.node_id
    assert f'broadcaster_receipts_total{{node="{node}",outcome="delivered"}} 1.0' in text
    assert f'broadcaster_receipts_total{{node="{node}",outcome="replayed"}} 2.0' in text


async def test_a_signed_callback_without_a_sid_is_a_400(api: Api) -> None:
    form = {"AccountSid": SECRETS["TWILIO_ACCOUNT_SID"], "MessageStatus": "delivered"}
    assert await callback(api, form, signed(form)) == 400


async def test_without_a_public_url_every_callback_is_refused(providers: Providers) -> None:
    rewrite_config(providers, extra=drill_channels(providers), public_url=None,
                   templates=without_verify_line(providers))
    async with serving(providers) as api:
        _alert_id, (sid, *_) = await fire_sms(api)
        assert {m["status_callback"] for m in providers.twilio.messages} == {None}
        form = receipt(sid, "delivered")
        assert await callback(api, form, signed(form)) == 403


def test_a_whatsapp_channel_alone_validates_its_receipts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WhatsApp statuses (read receipts included) come to the same endpoint, signed with the same account's token."""
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.setenv(name, SECRETS[name])
    config = make_config(tmp_path, [{
        "id": "whatsapp-residents", "kind": "whatsapp", "account_sid_env": "TWILIO_ACCOUNT_SID",
        "auth_token_env": "TWILIO_AUTH_TOKEN", "from": "whatsapp:+15005550006", "recipients": "r.csv",
        "content_sid": {"road_closure": {"ar": "HX" + "a" * 32, "en": "HX" + "b" * 32}}}], public_url=PUBLIC_URL)
    form = receipt("SM" + "c" * 32, "read", To="whatsapp:+971500000001", From="whatsapp:+15005550006")
    assert signature_ok(config, "/twilio/status", form, signed(form))
    assert not signature_ok(config, "/twilio/status", form, signed(form, token="not-the-auth-token"))
