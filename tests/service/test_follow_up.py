"""Follow-ups over HTTP: a cancel says why (``reason``), an all-clear reaches the original's audience."""

from __future__ import annotations

import re

from tests.service.support import Api


def plain(text: str) -> str:
    """``text`` without its bidi isolates (each value sits in one), as a reader sees its words."""
    return re.sub("[\u2066-\u2069]", "", text)


async def test_a_called_off_closure_says_called_off_and_never_sent_in_error(api: Api) -> None:
    status, fired = await api.fire("officer", mode="live")
    await api.settle()
    status, body = await api.post(f"/api/alerts/{fired['alert_id']}/cancel",
                                  {"mode": "live", "reason": "called_off", "confirm": "call_off"})
    assert status == 202, body
    await api.settle()
    status, view = await api.get(f"/api/alerts/{body['alert_id']}")
    assert view["template"] == "call_off" and view["msg_type"] == "Cancel"
    ar, en = (plain(t["text"]) for t in api.providers.x.tweets[2:])
    assert "تم إلغاء إغلاق الطريق" in ar and "has been called off" in en
    assert "بالخطأ" not in ar and "in error" not in en


async def test_a_cancel_reason_is_checked_and_named(api: Api) -> None:
    status, fired = await api.fire("officer", mode="dry-run")
    await api.settle()
    status, body = await api.post(f"/api/alerts/{fired['alert_id']}/cancel", {"mode": "dry-run", "reason": "oops"})
    assert status == 400 and body["field"] == "reason" and "called_off" in body["message"]
    # A live call-off is typed as its own template: typing "cancel" does not send it.
    status, live = await api.fire("officer", mode="live")
    await api.settle()
    sent = len(api.providers.x.tweets)
    status, body = await api.post(f"/api/alerts/{live['alert_id']}/cancel",
                                  {"mode": "live", "reason": "called_off", "confirm": "cancel"})
    assert status == 400 and body["field"] == "confirm" and "call_off" in body["message"]
    assert len(api.providers.x.tweets) == sent


async def test_the_all_clear_of_a_closure_names_the_road_and_reaches_its_audience(api: Api) -> None:
    status, fired = await api.fire("officer", mode="live")
    await api.settle()
    status, body = await api.post(f"/api/alerts/{fired['alert_id']}/all-clear",
                                  {"mode": "live", "confirm": "road_reopened"})
    assert status == 202, body
    await api.settle()
    status, view = await api.get(f"/api/alerts/{body['alert_id']}")
    status, original = await api.get(f"/api/alerts/{fired['alert_id']}")
    assert view["template"] == "road_reopened" and view["references"] == fired["alert_id"]
    assert view["channels"] == original["channels"]
    assert ({d["recipient"] for d in view["deliveries"] if d["channel"] == "sms-residents"}
            == {d["recipient"] for d in original["deliveries"] if d["channel"] == "sms-residents"})
    ar, en = (plain(t["text"]) for t in api.providers.x.tweets[2:])
    assert ar.startswith("إعادة فتح شارع الشيخ زايد") and en.startswith("Sheikh Zayed Road has reopened")


async def test_an_all_clear_of_an_unknown_alert_is_404_and_of_a_cancel_400(api: Api) -> None:
    status, body = await api.post("/api/alerts/nope/all-clear", {"mode": "dry-run"})
    assert status == 404, body
    status, fired = await api.fire("officer", mode="dry-run")
    await api.settle()
    status, cancel = await api.post(f"/api/alerts/{fired['alert_id']}/cancel", {"mode": "dry-run"})
    await api.settle()
    status, body = await api.post(f"/api/alerts/{cancel['alert_id']}/all-clear", {"mode": "dry-run"})
    assert status == 400 and "is a cancel" in body["message"]


async def test_a_follow_up_is_previewed_on_every_channel_with_nothing_stored_or_sent(api: Api) -> None:
    status, fired = await api.fire("officer", mode="live")
    await api.settle()
    sent = len(api.providers.x.tweets)
    status, listing = await api.get("/api/alerts")
    path = f"/api/alerts/{fired['alert_id']}/preview"
    status, update = await api.post(path, {"action": "update", "variables": {"reason": "accident"}}, "viewer")
    assert status == 200, update
    assert update["msg_type"] == "Update" and update["references"] == fired["alert_id"]
    assert {m["channel"] for m in update["messages"]} >= {"x-authority", "telegram-authority", "sms-residents"}
    assert all(m["text"].removeprefix("<b>").startswith(("تحديث: ", "Update: ")) for m in update["messages"])
    status, called_off = await api.post(path, {"action": "cancel", "reason": "called_off"}, "viewer")
    assert status == 200 and called_off["template"] == "call_off"
    status, reopened = await api.post(path, {"action": "all_clear"}, "viewer")
    assert status == 200 and reopened["template"] == "road_reopened"
    status, after = await api.get("/api/alerts")
    assert after == listing and len(api.providers.x.tweets) == sent
    status, body = await api.post(path, {"action": "resend"}, "viewer")
    assert status == 400 and body["field"] == "action"
    status, body = await api.post(path, {"action": "update", "reason": "error"}, "viewer")
    assert status == 400 and body["field"] == "reason"
