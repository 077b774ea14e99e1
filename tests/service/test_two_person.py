"""The two-person rule: a live earthquake waits for a second, different officer or approver."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from broadcaster.cli import main
from tests.engine.providers import SECRETS
from tests.service.support import QUAKE_CONFIRM, Api, ManualClock, provider_requests


async def fire_quake(api: Api, user: str = "officer") -> str:
    status, body = await api.fire(user, template="earthquake", mode="live")
    assert status == 202, body
    assert body["state"] == "awaiting_confirmation" and body["confirm_by"]
    return str(body["alert_id"])


async def test_nothing_is_sent_until_a_second_user_confirms(clocked: Api) -> None:
    api = clocked
    alert_id = await fire_quake(api)
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert await api.app.store.alerts.recent() == []
    status, view = await api.get(f"/api/alerts/{alert_id}")
    assert view["state"] == "awaiting_confirmation" and view["created_by"] == "officer" and view["deliveries"] == []
    assert view["request"]["template"] == "earthquake" and view["request"]["inputs"]["magnitude"] == {
        "ar": "5.4", "en": "5.4"}
    status, listing = await api.get("/api/alerts")
    assert [(a["alert_id"], a["state"]) for a in listing] == [(alert_id, "awaiting_confirmation")]
    # The second officer sees what the public would: every channel's text, the audience and the cost.
    preview = view["preview"]
    messages = preview["messages"]
    assert {m["channel"] for m in messages} == set(preview["channels"]) and len(preview["channels"]) >= 4
    assert all(m["text"] for m in messages) and any("5.4" in m["text"] for m in messages)
    assert [m["language"] for m in messages if m["channel"] == "x-authority"] == ["ar", "en"]
    sms = [m for m in messages if m["kind"] == "sms"]
    assert sms and preview["cost_segments"] == sum(m["cost_segments"] for m in sms) > 0
    assert preview["sms_recipients"] == sum(m["recipients"] for m in sms) > 0

    # The same user's confirmation is refused (409), whatever their role.
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer")
    assert status == 409 and "different officer" in body["message"]
    assert provider_requests(api.providers) == [0, 0, 0, 0]

    # A second officer's is accepted; the alert keeps the id the first officer was given.
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2")
    assert status == 202 and body == {"alert_id": alert_id, "state": "sending"}
    await api.settle()
    counts = await api.app.store.alerts.state_counts(alert_id)
    assert all(set(c) == {"sent"} for c in counts.values()), counts
    assert len(api.providers.x.tweets) == 2
    # The partner's webhook body names the same alert id.
    assert {d.json["alert_id"] for d in api.providers.webhook.deliveries} == {alert_id}
    status, view = await api.get(f"/api/alerts/{alert_id}")
    assert view["created_by"] == "officer" and view["confirmed_by"] == "officer2"

    # A confirmed fire cannot be confirmed again.
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "approver")
    assert status == 409
    actions = [(r.actor, r.action) for r in reversed(await api.audit(limit=20))
               if r.action in ("fire", "confirm")]
    assert actions == [("officer", "fire"), ("officer2", "confirm")]
    fire_row = (await api.audit("fire"))[0]
    assert orjson.loads(fire_row.detail)["state"] == "awaiting_confirmation"


async def test_an_approver_second_signs_an_officers_fire(clocked: Api) -> None:
    alert_id = await fire_quake(clocked, "officer")
    status, body = await clocked.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "approver")
    assert status == 202, body
    await clocked.settle()


async def test_the_confirmation_window_closes(clocked: Api) -> None:
    api = clocked
    alert_id = await fire_quake(api)
    assert isinstance(api.clock, ManualClock)
    api.clock.advance(600 + 1)
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2")
    assert status == 409 and "window" in body["message"]
    status, view = await api.get(f"/api/alerts/{alert_id}")
    assert view["state"] == "not_confirmed"
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert await api.audit("confirmation_expired")
    assert await api.events(alert_id) == [
        ("progress", {"channel": None, "state": "not_confirmed", "counts": {}}),
        ("done", {"alert_id": alert_id, "ok": False, "state": "not_confirmed"}),
    ]


async def test_a_waiting_subscriber_hears_when_the_window_closes(clocked: Api) -> None:
    api = clocked
    alert_id = await fire_quake(api)
    assert isinstance(api.clock, ManualClock)
    api.service.hub.keepalive_s = 0.05  # the manual clock wakes no one: re-check the window often

    async def time_passes() -> None:
        api.clock.advance(601)  # type: ignore[union-attr]

    events = await api.events(alert_id, after_first=time_passes)
    assert events[0][1]["state"] == "awaiting_confirmation"
    assert events[-1] == ("done", {"alert_id": alert_id, "ok": False, "state": "not_confirmed"})


async def test_two_confirmations_at_once_start_one_delivery(clocked: Api) -> None:
    api = clocked
    alert_id = await fire_quake(api)
    results = await asyncio.gather(*(api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, user)
                                     for user in ("officer2", "approver")))
    assert sorted(status for status, _ in results) == [202, 409]
    await api.settle()
    assert len(api.providers.x.tweets) == 2
    assert len(api.providers.telegram.sent) == 1


async def test_a_subscriber_waits_through_the_confirmation(clocked: Api) -> None:
    api = clocked
    alert_id = await fire_quake(api)
    confirmed: list[int] = []

    async def second_officer() -> None:  # runs once the stream has said "awaiting_confirmation"
        confirmed.append((await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2"))[0])

    events = await api.events(alert_id, after_first=second_officer)
    assert confirmed == [202]
    assert events[0] == ("progress", {"channel": None, "state": "awaiting_confirmation", "counts": {}})
    assert events[-1][0] == "done" and events[-1][1]["ok"] is True
    assert any(name == "progress" and data["channel"] == "x-authority" for name, data in events[1:-1])


async def test_templates_without_two_person_fire_at_once(clocked: Api) -> None:
    status, body = await clocked.fire("officer", template="flood_warning", mode="live")
    assert status == 202 and body["state"] == "sending"
    # Rehearsals of a two-person template need no second officer.
    status, body = await clocked.fire("officer", template="earthquake", mode="dry-run")
    assert status == 202 and body["state"] == "sending"
    await clocked.settle()


async def test_a_confirmation_that_cannot_start_leaves_the_fire_waiting(
    clocked: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = clocked
    alert_id = await fire_quake(api)
    answers: list[int] = []

    async def confirm_twice() -> None:
        monkeypatch.delenv("TWILIO_AUTH_TOKEN")
        answers.append((await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2"))[0])
        pending = await api.app.store.pending.get(alert_id)
        assert pending is not None and pending.state == "awaiting_confirmation"
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", SECRETS["TWILIO_AUTH_TOKEN"])
        answers.append((await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2"))[0])

    events = await api.events(alert_id, after_first=confirm_twice)
    assert answers == [503, 202]
    assert events[-1] == ("done", {"alert_id": alert_id, "ok": True, "state": "done"})


async def test_a_live_release_is_typed_one_click_sends_nothing(clocked: Api) -> None:
    api = clocked
    alert_id = await fire_quake(api)
    for body in (None, {}, {"confirm": "flood_warning"}):
        status, answer = await api.post(f"/api/alerts/{alert_id}/confirm", body, "officer2")
        assert status == 400 and answer["field"] == "confirm", answer
    status, answer = await api.post(f"/api/alerts/{alert_id}/confirm", {"confirm": "earthquake", "extra": 1},
                                    "officer2")
    assert status == 400 and answer["field"] == "extra", answer
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    status, view = await api.get(f"/api/alerts/{alert_id}")
    assert view["state"] == "awaiting_confirmation"
    status, answer = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2")
    assert status == 202, answer
    await api.settle()
    assert len(api.providers.x.tweets) == 2


async def test_a_cli_officer_is_the_same_officer_to_the_service(
    clocked: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI acts as the token's user: an officer who fired from the command line cannot second-sign
    their own alert in the console (before, the CLI was ``cli:root`` and could)."""
    api = clocked
    monkeypatch.setenv("BROADCASTER_TOKEN", api.tokens["officer"])
    p = api.providers
    code = await asyncio.to_thread(main, p.cli("fire", "earthquake", "--use-examples", "--live", "--yes", "--json"))
    assert code == 0
    alert_id = orjson.loads(capsys.readouterr().out)["alert_id"]
    assert provider_requests(p) == [0, 0, 0, 0]
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer")
    assert status == 409 and "officer fired alert" in body["message"]
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2")
    assert status == 202, body
    await api.settle()
    assert len(p.x.tweets) == 2
