"""Issue 12, point 6: ``GET /api/alerts?mode=…`` lists only those modes (the console's history hides dry-runs and
rehearsals unless asked), and a wrong mode is a 400 naming the parameter."""

from __future__ import annotations

from tests.service.support import Api


async def test_the_history_lists_only_the_modes_asked_for(api: Api) -> None:
    _, dry = await api.fire("operator", mode="dry-run")
    _, exercise = await api.fire("operator", mode="exercise")
    await api.settle()
    status, every = await api.get("/api/alerts")
    assert status == 200
    assert {a["alert_id"] for a in every} >= {dry["alert_id"], exercise["alert_id"]}
    status, real = await api.get("/api/alerts?mode=live,exercise")
    assert status == 200, real
    assert [a["alert_id"] for a in real] == [exercise["alert_id"]]
    status, only_dry = await api.get("/api/alerts?mode=dry-run&limit=5")
    assert [a["alert_id"] for a in only_dry] == [dry["alert_id"]]


async def test_a_held_live_fire_is_listed_under_live(api: Api) -> None:
    status, held = await api.fire("officer", template="earthquake", mode="live")
    assert status == 202 and held["state"] == "awaiting_confirmation", held
    _, live = await api.get("/api/alerts?mode=live")
    assert [a["alert_id"] for a in live] == [held["alert_id"]]
    _, dry = await api.get("/api/alerts?mode=dry-run")
    assert dry == []


async def test_an_unknown_mode_is_a_400_naming_the_parameter(api: Api) -> None:
    for query in ("mode=rehearsal", "mode=", "mode=live,,exercise", "mode=LIVE"):
        status, answer = await api.get(f"/api/alerts?{query}")
        assert status == 400, (query, answer)
        assert answer["field"] == "mode" and "dry-run, exercise, live" in answer["message"], answer
