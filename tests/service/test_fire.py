"""Firing through the API: dry-run, exercise and live; follow-ups; bad input; the same JSON as the CLI."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
import pytest

from broadcaster.cli import main
from broadcaster.engine.outbox import commit, plan_alert
from broadcaster.errors import StoreFull
from broadcaster.states import Mode
from broadcaster.templates.variables import example_inputs
from tests.engine.providers import secret_forms
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import echo_auth
from tests.service.conftest import drill_channels
from tests.service.support import PUBLIC_URL, Api, provider_requests, rewrite_config
from tests.support import loaded, reopen


async def cli_json(api: Api, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    """The CLI's JSON answer; it runs its own event loop, so on a thread of its own while the service serves."""
    capsys.readouterr()
    assert await asyncio.to_thread(main, api.providers.cli(*args)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return [orjson.loads(line) for line in lines] if len(lines) > 1 else orjson.loads(lines[0])


async def test_dry_run_opens_no_provider_connection_and_streams_to_done(api: Api, connects: list[Any]) -> None:
    provider_ports = {int(f.base_url.rsplit(":", 1)[1])
                      for f in (api.providers.x, api.providers.telegram, api.providers.twilio, api.providers.webhook)}
    status, body = await api.fire("operator", mode="dry-run")
    assert status == 202 and body["state"] == "sending"
    events = await api.events(body["alert_id"])
    await api.settle()
    assert not [a for a in connects if isinstance(a, tuple) and a[1] in provider_ports]
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert events[0][0] == "progress" and events[0][1]["channel"] is None
    assert events[-1] == ("done", {"alert_id": body["alert_id"], "ok": True, "state": "done"})
    status, view = await api.get(f"/api/alerts/{body['alert_id']}")
    assert view["mode"] == "dry-run" and view["state"] == "done" and view["created_by"] == "operator"
    assert {d["state"] for d in view["deliveries"]} == {"sent"}
    # x ar/en, telegram, 3 SMS, partner-hook; never partner-drills: a dry-run rehearses a live alert
    assert len(view["deliveries"]) == 2 + 1 + 3 + 1


async def test_live_fire_reaches_every_channel_with_a_status_callback(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    status, body = await api.fire("officer", mode="live")
    assert status == 202, body
    alert_id = body["alert_id"]
    await api.settle()
    p = api.providers
    assert len(p.x.tweets) == 2 and len(p.telegram.sent) == 1
    assert [d.path for d in p.webhook.deliveries] == ["/alerts"]  # partner-drills (/drills) is a drill channel
    assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)
    assert {m["status_callback"] for m in p.twilio.messages} == {f"{PUBLIC_URL}/twilio/status"}
    status, view = await api.get(f"/api/alerts/{alert_id}")
    assert view["counts"]["sms-residents"] == {"sent": 3}
    # The deliveries are the CLI's `fire --json` objects (plus the receipt), and the log is `log --json`.
    db_rows = await api.app.store.alerts.deliveries(alert_id)
    assert [{k: v for k, v in d.items() if k != "receipt"} for d in view["deliveries"]] == [
        {"channel": d.channel_id, "recipient": d.recipient, "language": d.language, "state": d.state,
         "attempts": d.attempts, "provider_id": d.provider_id, "moved_from": None} for d in db_rows]
    status, log = await api.get(f"/api/alerts/{alert_id}/log")
    assert log == await cli_json(api, capsys, "log", alert_id, "--json")
    status, page = await api.get(f"/api/alerts/{alert_id}/log?limit=2&offset=1")
    assert page == log[1:3]


async def test_the_api_log_of_an_echoing_provider_shows_no_form_of_a_secret(api: Api) -> None:
    """Twilio echoes its basic auth, Telegram the lower-cased ``/bot<token>/``: the log a viewer reads shows
    neither, nor does the alert's view (its deliveries' last errors)."""
    p = api.providers
    p.twilio.script(echo_auth(), times=3)
    p.telegram.script(FakeTelegram.echo_url())
    status, body = await api.fire("officer", mode="live")
    assert status == 202, body
    await api.settle()
    _status, log = await api.get(f"/api/alerts/{body['alert_id']}/log")
    _status, view = await api.get(f"/api/alerts/{body['alert_id']}")
    details = [line["detail"] or "" for line in log]
    assert any("basic ******** is not valid for" in d.lower() for d in details)
    assert any("no such method /bot********/sendmessage" in d.lower() for d in details)
    shown = (orjson.dumps(log) + orjson.dumps(view)).decode().lower()
    assert [form for form in secret_forms() if form in shown] == []


async def test_the_deliveries_of_an_alert_are_paged(api: Api) -> None:
    status, body = await api.fire("officer", mode="dry-run")
    assert status == 202, body
    await api.settle()
    path = f"/api/alerts/{body['alert_id']}"
    _status, whole = await api.get(path)
    assert len(whole["deliveries"]) == whole["deliveries_total"] == 7
    for query, expected in (("limit=2&offset=1", whole["deliveries"][1:3]), ("limit=3", whole["deliveries"][:3]),
                            ("offset=5", whole["deliveries"][5:]), ("offset=7", []), ("limit=2&offset=6",
                                                                                       whole["deliveries"][6:])):
        status, page = await api.get(f"{path}?{query}")
        assert status == 200, page
        assert page["deliveries"] == expected, query
        assert page["deliveries_total"] == 7, query


async def test_exercise_goes_only_to_exercise_channels(api: Api) -> None:
    status, body = await api.fire("operator", template="flood_warning", mode="exercise")
    assert status == 202, body
    await api.settle()
    p = api.providers
    assert provider_requests(p)[:3] == [0, 0, 0]
    (delivery,) = p.webhook.deliveries
    assert delivery.path == "/drills" and delivery.json["status"] == "Exercise"


async def test_update_and_cancel_follow_the_original(api: Api) -> None:
    status, fired = await api.fire("officer", mode="live")
    await api.settle()
    status, updated = await api.post(f"/api/alerts/{fired['alert_id']}/update",
                                     {"variables": {"reason": "accident"}, "mode": "live", "confirm": "road_closure"})
    assert status == 202, updated
    await api.settle()
    status, cancelled = await api.post(f"/api/alerts/{fired['alert_id']}/cancel", {"mode": "live", "confirm": "cancel"})
    assert status == 202, cancelled
    await api.settle()
    status, listing = await api.get("/api/alerts")
    assert [(a["alert_id"], a["msg_type"], a["references"]) for a in listing] == [
        (cancelled["alert_id"], "Cancel", fired["alert_id"]),
        (updated["alert_id"], "Update", fired["alert_id"]),
        (fired["alert_id"], "Alert", None),
    ]
    # X threads the follow-ups under the original posts.
    replies = [t for t in api.providers.x.tweets if t["reply_to"]]
    assert len(replies) == 4
    # A live follow-up of a dry-run alert would announce something that never went out.
    status, dry = await api.fire("officer", mode="dry-run")
    await api.settle()
    status, body = await api.post(f"/api/alerts/{dry['alert_id']}/cancel", {"mode": "live", "confirm": "cancel"})
    assert status == 400 and body["field"] == "mode"


async def test_a_dry_run_cancel_never_withdraws_a_live_alert(api: Api) -> None:
    store = api.app.store
    status, fired = await api.fire("officer", mode="live")
    await api.settle()
    # Pretend one delivery is still queued, then rehearse its cancel.
    await reopen(store.db, "UPDATE deliveries SET state = 'pending' WHERE id = (SELECT MIN(id) FROM deliveries)")
    status, _rehearsal = await api.post(f"/api/alerts/{fired['alert_id']}/cancel", {"mode": "dry-run"})
    assert status == 202
    await api.settle()
    assert (await store.alerts.state_counts(fired["alert_id"]))["x-authority"].get("pending") == 1


BAD_BODIES: list[tuple[Any, str]] = [
    ({"mode": "dry-run"}, "template"),
    ({"template": "no_such", "mode": "dry-run"}, "template"),
    ({"template": "road_closure", "use_examples": True, "mode": "loud"}, "mode"),
    ({"template": "road_closure", "use_examples": True}, "mode"),
    ({"template": "road_closure", "use_examples": True, "mode": "dry-run", "colour": "red"}, "colour"),
    ({"template": "road_closure", "use_examples": "yes", "mode": "dry-run"}, "use_examples"),
    ({"template": "road_closure", "variables": ["E11"], "mode": "dry-run"}, "variables"),
    ({"template": "road_closure", "variables": {"road": True}, "mode": "dry-run"}, "variables.road"),
    ({"template": "road_closure", "variables": {"detour": {"fr": "x"}}, "mode": "dry-run"}, "variables.detour.fr"),
    ({"template": "road_closure", "use_examples": True, "variables": {"detour": "see https://evil.example"},
      "mode": "dry-run"}, "variables.detour"),
    ({"template": "road_closure", "use_examples": True, "variables": {"road": "MOON"}, "mode": "dry-run"},
     "variables.road"),
    ({"template": "road_closure", "use_examples": True, "variables": {"detour": "Al Khail Road"}, "mode": "dry-run"},
     "variables.detour"),  # English in the Arabic slot
    ({"template": "road_closure", "use_examples": True, "variables": {"detour": "a\u202eb"}, "mode": "dry-run"},
     "variables.detour"),
    ({"template": "road_closure", "use_examples": True, "areas": ["ATLANTIS"], "mode": "dry-run"}, "areas"),
    ({"template": "road_closure", "use_examples": True, "areas": "DXB", "mode": "dry-run"}, "areas"),
    ({"template": "road_closure", "use_examples": True, "channels": "nope", "mode": "dry-run"}, "channels"),
    ({"template": "road_closure", "use_examples": True, "channels": 7, "mode": "dry-run"}, "channels"),
    ({"template": "road_closure", "use_examples": True, "channels": "x-authority", "mode": "exercise"}, "channels"),
    ({"template": "road_closure", "use_examples": True, "mode": "live"}, "confirm"),
    ({"template": "road_closure", "use_examples": True, "mode": "live", "confirm": "earthquake"}, "confirm"),
    ({"template": "road_closure", "variables": {}, "mode": "dry-run"}, "variables"),  # every missing one at once
    ([1, 2], "body"),
    ("not json", "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD_BODIES)])
async def test_bad_input_is_a_400_naming_the_field_and_sends_nothing(api: Api, body: Any, field: str) -> None:
    if body == "not json":
        async with api.client.post("/api/alerts", data=b"{nope", headers=api.headers("officer")) as response:
            status, answer = response.status, await response.json()
    else:
        status, answer = await api.post("/api/alerts", body, "officer")
    assert status == 400, answer
    assert answer["error"] == "invalid" and answer["field"] == field, answer
    assert answer["message"].startswith(field)
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert await api.app.store.alerts.recent() == []


async def test_a_live_fire_with_a_missing_secret_is_refused_before_anything_is_stored(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    status, body = await api.fire("officer", mode="live")
    assert status == 503 and "TWILIO_AUTH_TOKEN" in body["message"]
    assert await api.app.store.alerts.recent() == [] and provider_requests(api.providers) == [0, 0, 0, 0]


async def test_reads_answer_as_the_cli_does(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    _, listing = await api.get("/api/templates")
    assert listing == await cli_json(api, capsys, "templates", "list", "--json")
    _, shown = await api.get("/api/templates/earthquake")
    assert shown == await cli_json(api, capsys, "templates", "show", "earthquake", "--json")
    status, preview = await api.post("/api/preview", {"template": "road_closure", "use_examples": True,
                                                      "channels": "kind:sms"}, "viewer")
    assert status == 200
    cli = await cli_json(api, capsys, "preview", "road_closure", "--use-examples", "--channels", "kind:sms", "--json")
    # Each preview is a new alert, so its verification code differs; everything else is the same.
    assert unverified(preview["messages"]) == unverified(cli["messages"]) and preview["approved"] == cli["approved"]
    _, channels = await api.get("/api/channels")
    assert [c["id"] for c in channels] == ["x-authority", "telegram-authority", "sms-residents", "partner-hook",
                                           "partner-drills"]
    _status, places = await api.get("/api/gazetteer")
    assert {"code": "E11", "type": "road"}.items() <= only_place(places, "E11").items()
    everything = orjson.dumps([listing, shown, preview, channels, places]).decode()
    assert "_env" not in everything and "SECRET" not in everything


def unverified(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` with the code of their verification line written CODE."""
    return [{**m, "text": re.sub(r"/v/[0-9A-Z]{8}", "/v/CODE", m["text"])} for m in messages]


def only_place(places: list[dict[str, Any]], code: str) -> dict[str, Any]:
    (place,) = [p for p in places if p["code"] == code]
    return place


@pytest.mark.parametrize("path", ["/api/alerts/nope", "/api/alerts/nope/log", "/api/alerts/nope/events",
                                  "/api/templates/nope", "/api/nowhere"])
async def test_unknown_things_are_404(api: Api, path: str) -> None:
    status, body = await api.get(path)
    assert status == 404 and body["error"] == "not_found"


@pytest.mark.parametrize("action", ["update", "cancel", "confirm"])
async def test_following_up_an_unknown_alert_is_404(api: Api, action: str) -> None:
    status, body = await api.post(f"/api/alerts/nope/{action}", {"mode": "dry-run"})
    assert status == 404, body


async def test_a_late_subscriber_gets_the_counts_then_done(api: Api) -> None:
    _status, body = await api.fire("officer", mode="live")
    await api.settle()
    events = await api.events(body["alert_id"])
    assert [name for name, _ in events] == ["progress", "done"]
    assert events[0][1]["counts"]["x-authority"] == {"sent": 2}
    assert events[1][1]["ok"] is True


async def test_events_of_an_alert_delivered_elsewhere_are_polled_from_the_store(api: Api) -> None:
    # Committed by another process (here: directly), with nothing delivering it in this one.
    app = api.app
    now = time.time()
    plan = await plan_alert(app.config, app.catalogue, "road_closure",
                            example_inputs(app.catalogue.get("road_closure"), now, app.config.timezone),
                            mode=Mode.DRY_RUN, now=now, selection="partner-hook")
    await commit(app.store, plan)
    api.service.hub.poll_s = 0.05

    async def delivered_elsewhere() -> None:
        await app.store.db.execute("UPDATE deliveries SET state = 'sent' WHERE alert_id = ?", (plan.alert.id,))

    events = await api.events(plan.alert.id, after_first=delivered_elsewhere)
    assert events[0] == ("progress", {"channel": None, "state": None, "counts": {"partner-hook": {"pending": 1}}})
    assert events[-2][1]["counts"] == {"partner-hook": {"sent": 1}}
    assert events[-1] == ("done", {"alert_id": plan.alert.id, "ok": True, "state": "done"})


async def test_a_full_database_is_a_503_that_says_so_and_nothing_is_sent(api: Api) -> None:
    db = api.app.store.db
    pages = (await db.execute("PRAGMA page_count")).rows[0][0]
    await db.execute(f"PRAGMA max_page_count = {pages + 50}")
    await db.execute("CREATE TABLE filler (x BLOB)")
    with pytest.raises(StoreFull):
        while True:  # every free page taken: the disk is full
            await db.execute("INSERT INTO filler (x) VALUES (randomblob(3000))")
    status, body = await api.fire("officer", mode="live")
    assert status == 503, body
    assert body["error"] == "database_full" and "full" in body["message"] and "nothing was changed" in body["message"]
    await api.settle()
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert await api.app.store.alerts.recent(10) == []


async def test_a_follow_up_is_checked_against_the_config_as_it_is_now(api: Api) -> None:
    """The drill hook became a partner's public hook after the exercise: its update is refused, nothing sent."""
    status, body = await api.fire("officer", mode="exercise")
    assert status == 202, body
    await api.settle()
    assert [d.path for d in api.providers.webhook.deliveries] == ["/drills"]
    p = api.providers
    rewrite_config(p, extra=[{**drill_channels(p)[0], "exercise": False}], public_url=PUBLIC_URL)
    api.app.config = loaded(p.config).config  # the service restarted on the new channels.toml
    status, refused = await api.post(f"/api/alerts/{body['alert_id']}/update", {"mode": "exercise"})
    assert status == 400, refused
    assert refused["field"] == "channels"
    assert "partner-drills: no longer an exercise channel" in refused["message"]
    await api.settle()
    assert [d.path for d in p.webhook.deliveries] == ["/drills"]
    assert [a.id for a in await api.app.store.alerts.recent(10)] == [body["alert_id"]]
