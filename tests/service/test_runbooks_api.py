"""Runbooks over HTTP: list, rehearse (as `runbook rehearse --json`), run, status and stop, with roles."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broadcaster.app.runbook import host
from broadcaster.runbooks.ids import new_run_id
from broadcaster.states import Mode, RunKind, RunState
from broadcaster.store.records import RunRecord
from tests.engine.providers import REPO, Providers
from tests.service.conftest import drill_channels
from tests.service.support import PUBLIC_URL, Api, provider_requests, rewrite_config, serving

SHIPPED = sorted(p.stem for p in (REPO / "runbooks").glob("*.toml"))


@pytest.fixture
async def rb_api(providers: Providers) -> AsyncIterator[Api]:
    """The service with the shipped runbooks folder."""
    rewrite_config(providers, extra=drill_channels(providers), public_url=PUBLIC_URL,
                   runbooks=str(REPO / "runbooks"))
    async with serving(providers) as service_api:
        yield service_api


async def audit_actions(api: Api) -> list[tuple[str, str]]:
    rows = await api.app.store.db.execute("SELECT actor, action FROM audit ORDER BY seq")
    return [(row["actor"], row["action"]) for row in rows]


async def stored_run(api: Api, mode: Mode) -> RunRecord:
    """A running run in the store (no scheduler needed to test who may stop it)."""
    now = time.time()
    run = RunRecord(id=new_run_id(RunKind.RUNBOOK, now), kind=RunKind.RUNBOOK, runbook="flood_response",
                    source="test", spec={}, config=str(api.app.config.path), mode=mode, inputs={},
                    state=RunState.RUNNING, started_at=now)
    await api.app.store.runs.create(run)
    return run


async def test_list_names_every_shipped_runbook_with_inputs(rb_api: Api) -> None:
    status, body = await rb_api.get("/api/runbooks", "viewer")
    assert status == 200
    assert [r["id"] for r in body] == SHIPPED
    flood = next(r for r in body if r["id"] == "flood_response")
    assert flood["name"] == {"ar": "الاستجابة للسيول", "en": "Flood response"}
    assert flood["steps"] >= 1
    area = next(i for i in flood["inputs"] if i["name"] == "area")
    assert area == {"name": "area", "example": {"ar": "DXB-HATTA", "en": "DXB-HATTA"}, "type": "value",
                    "description": area["description"]}
    assert (await rb_api.get("/api/runbooks", None))[0] == 401


@pytest.mark.parametrize("runbook_id", SHIPPED)
async def test_rehearse_returns_the_timeline_and_sends_nothing(rb_api: Api, runbook_id: str) -> None:
    before = provider_requests(rb_api.providers)
    status, body = await rb_api.post(f"/api/runbooks/{runbook_id}/rehearse", {}, "operator")
    assert status == 200, body
    assert body["runbook"] == runbook_id and body["mode"] == "dry-run" and body["run_id"].startswith("run-")
    assert len(body["steps"]) >= 1
    first = body["steps"][0]
    assert first["state"] == "fired" and first["channels"] and first["messages"]
    assert {m["language"] for m in first["messages"]} >= {"ar", "en"}
    assert provider_requests(rb_api.providers) == before
    assert ("operator", "runbook_rehearse") in await audit_actions(rb_api)
    # The rehearsal is stored like a run: status shows it by id.
    status, run = await rb_api.get(f"/api/runbooks/runs/{body['run_id']}")
    assert status == 200 and run["kind"] == "rehearsal" and run["state"] == "finished"


async def test_rehearse_takes_inputs(rb_api: Api) -> None:
    detour = {"ar": "طريق بديل", "en": "Another road"}
    status, body = await rb_api.post("/api/runbooks/flood_response/rehearse",
                                     {"inputs": {"detour": detour}}, "operator")
    assert status == 200, body
    assert body["inputs"]["detour"] == detour
    texts = [m["text"] for s in body["steps"] for m in s["messages"]]
    assert any("Another road" in t for t in texts) and any("طريق بديل" in t for t in texts)


async def test_rehearse_roles_unknown_runbook_and_bad_input(rb_api: Api) -> None:
    status, body = await rb_api.post("/api/runbooks/flood_response/rehearse", {}, "viewer")
    assert status == 403 and body["error"] == "forbidden"
    for missing in ("nope", "..%2Fchannels"):
        status, body = await rb_api.post(f"/api/runbooks/{missing}/rehearse", {}, "operator")
        assert status == 404 and body["error"] == "not_found"
    status, body = await rb_api.post("/api/runbooks/flood_response/rehearse", {"inputs": {"colour": "red"}},
                                     "operator")
    assert status == 400 and body["field"] == "inputs.colour"
    status, body = await rb_api.post("/api/runbooks/flood_response/rehearse", {"inputs": {"until": "soonish"}},
                                     "operator")
    assert status == 400 and body["field"] == "inputs.until", body
    status, body = await rb_api.post("/api/runbooks/flood_response/rehearse", {"inputs": {"area": True}},
                                     "operator")
    assert status == 400 and body["field"] == "inputs.area"
    status, body = await rb_api.post("/api/runbooks/flood_response/rehearse", {"speed": 2}, "operator")
    assert status == 400 and body["field"] == "speed"


async def test_a_run_names_every_missing_input_at_once(rb_api: Api) -> None:
    status, body = await rb_api.post("/api/runbooks/flood_response/run",
                                     {"mode": "exercise", "inputs": {"area": "DXB-HATTA"}}, "operator")
    assert status == 400 and body["field"] == "inputs", body
    assert "no value given for inputs until, road, detour" in body["message"]


async def test_runs_lists_runs_and_stop_needs_the_right_role(rb_api: Api) -> None:
    exercise, live = await stored_run(rb_api, Mode.EXERCISE), await stored_run(rb_api, Mode.LIVE)
    status, body = await rb_api.get("/api/runbooks/runs", "viewer")
    assert status == 200 and {r["run_id"] for r in body["runs"]} == {exercise.id, live.id}

    assert (await rb_api.post(f"/api/runbooks/runs/{exercise.id}/stop", {}, "viewer"))[0] == 403
    status, body = await rb_api.post(f"/api/runbooks/runs/{live.id}/stop", {}, "operator")
    assert status == 403 and "officer" in body["message"]
    status, body = await rb_api.post(f"/api/runbooks/runs/{exercise.id}/stop", {}, "operator")
    assert status == 200 and body["state"] == "stopped"
    status, body = await rb_api.post(f"/api/runbooks/runs/{live.id}/stop", {}, "officer")
    assert status == 200 and body["state"] == "stopped"
    status, body = await rb_api.post(f"/api/runbooks/runs/{live.id}/stop", {}, "officer")
    assert status == 409
    assert (await rb_api.post("/api/runbooks/runs/run-nope/stop", {}, "officer"))[0] == 404
    actions = await audit_actions(rb_api)
    assert ("operator", "runbook_stop") in actions and ("officer", "runbook_stop") in actions
    assert ("viewer", "forbidden") in actions and ("operator", "forbidden") in actions
    status, body = await rb_api.get("/api/runbooks/runs", "viewer")
    assert {r["state"] for r in body["runs"]} == {"stopped"}


async def test_run_checks_roles_and_needs_the_scheduler(rb_api: Api) -> None:
    path = "/api/runbooks/road_closure_planned/run"
    body: dict[str, Any] = {"mode": "exercise", "use_examples": True}
    assert (await rb_api.post(path, body, "viewer"))[0] == 403
    assert (await rb_api.post(path, {**body, "mode": "live", "confirm": "road_closure_planned"}, "operator"))[0] \
        == 403
    status, answer = await rb_api.post(path, {**body, "mode": "live"}, "officer")
    assert status == 400 and answer["field"] == "confirm"
    status, answer = await rb_api.post(path, {**body, "mode": "dry-run"}, "officer")
    assert status == 400 and answer["field"] == "mode"
    status, answer = await rb_api.post(path, {"mode": "exercise"}, "operator")
    assert status == 400 and answer["field"] == "inputs"  # every missing input at once
    # make_app alone runs no scheduler host (serve starts one): nothing is started.
    status, answer = await rb_api.post(path, body, "operator")
    assert status == 503 and "broadcaster runbook run" in answer["message"]
    assert await rb_api.app.store.runs.recent() == []


async def test_an_exercise_run_starts_on_the_scheduler_and_stops(rb_api: Api) -> None:
    scheduler = host(rb_api.app)
    await scheduler.start(paused=True)  # jobs are scheduled but none fires during the test
    rb_api.service.scheduler = scheduler
    try:
        status, body = await rb_api.post("/api/runbooks/flood_response/run",
                                         {"mode": "exercise", "use_examples": True}, "operator")
        assert status == 202, body
        assert body["mode"] == "exercise" and body["state"] == "running"
        run_id = body["run_id"]
        status, listing = await rb_api.get("/api/runbooks/runs")
        (run,) = listing["runs"]
        assert run["run_id"] == run_id and run["state"] == "running" and run["steps"]
        assert ("operator", "runbook_run") in await audit_actions(rb_api)
        status, body = await rb_api.post(f"/api/runbooks/runs/{run_id}/stop", {}, "operator")
        assert status == 200 and body["state"] == "stopped" and body["jobs_removed"] >= 1
        assert all(s["state"] == "skipped" for s in body["steps"])
    finally:
        rb_api.service.scheduler = None
        await scheduler.shutdown()
