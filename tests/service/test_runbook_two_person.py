"""A live runbook step of a two-person template is held for a second officer, like every other live fire.

One officer starting ``earthquake_response`` live used to put the earthquake on
every channel at once, with nobody confirming it. Now its step is ``held``: the
run waits, nothing is sent, the officer who started it cannot confirm it, and a
second officer releases it (or it fails when the window closes, or is withdrawn
when the run is stopped).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from broadcaster.app.runbook import host, settle_held
from broadcaster.runbooks.scheduler import Host
from broadcaster.states import StepState
from broadcaster.store.records import RunStepRow
from tests.engine.providers import REPO, Providers
from tests.service.conftest import drill_channels
from tests.service.support import PUBLIC_URL, QUAKE_CONFIRM, Api, provider_requests, rewrite_config, serving

DEADLINE_S = 20.0  # generous: only a hang reaches it
RUN = {"mode": "live", "use_examples": True, "confirm": "earthquake_response"}


@pytest.fixture
async def scheduled(providers: Providers) -> AsyncIterator[tuple[Api, Host]]:
    """The service with the shipped runbooks and a scheduler host that fires what is due."""
    rewrite_config(providers, extra=drill_channels(providers), public_url=PUBLIC_URL,
                   runbooks=str(REPO / "runbooks"))
    async with serving(providers) as api:
        scheduler = host(api.app, poll_s=0.05)
        await scheduler.start()
        serving_task = asyncio.create_task(scheduler.serve())  # as `broadcaster serve` runs it
        api.service.scheduler = scheduler
        try:
            yield api, scheduler
        finally:
            api.service.scheduler = None
            serving_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving_task
            await scheduler.shutdown()


async def step_row(api: Api, run_id: str, step_id: str, *, state: StepState) -> RunStepRow:
    """The step's row once it reaches ``state``."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        rows = {r.step_id: r for r in await api.app.store.runs.steps(run_id) if r.occurrence == 0}
        row = rows.get(step_id)
        if row is not None and row.state == state:
            return row
        assert time.monotonic() < deadline, f"{step_id} never became {state}: {row}"
        await asyncio.sleep(0.05)


async def start_held(api: Api) -> tuple[str, str]:
    status, body = await api.post("/api/runbooks/earthquake_response/run", RUN, "officer")
    assert status == 202, body
    run_id = body["run_id"]
    row = await step_row(api, run_id, "alert", state=StepState.HELD)
    assert row.alert_id is not None and "second officer" in (row.detail or "")
    return run_id, row.alert_id


async def test_a_live_runbook_step_waits_for_a_second_officer(scheduled: tuple[Api, Host]) -> None:
    api, _ = scheduled
    run_id, alert_id = await start_held(api)
    await asyncio.sleep(0.3)  # several scheduler polls: still nothing goes out, and the run goes no further
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert await api.app.store.alerts.find(alert_id) is None
    status, run = await api.get(f"/api/runbooks/runs/{run_id}")
    states = {s["step"]: s["state"] for s in run["steps"] if s["occurrence"] == 0}
    assert states == {"alert": "held"}, states  # the steps after it wait
    # The console lists it for a second officer, with what it would send.
    status, view = await api.get(f"/api/alerts/{alert_id}")
    assert view["state"] == "awaiting_confirmation" and view["template"] == "earthquake"
    assert view["preview"]["messages"] and view["created_by"] == "officer"

    # The officer who started the run asked for it: they cannot be its second officer.
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer")
    assert status == 409 and "different officer" in body["message"], body
    assert provider_requests(api.providers) == [0, 0, 0, 0]

    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2")
    assert status == 202, body
    await api.settle()
    assert len(api.providers.x.tweets) == 2 and len(api.providers.telegram.sent) >= 1
    fired = await step_row(api, run_id, "alert", state=StepState.FIRED)
    assert fired.confirmed_at is not None and "confirmed by officer2" in (fired.detail or "")
    # The run goes on: the hourly advice counts from the confirmation.
    advice = await step_row(api, run_id, "aftershock_advice", state=StepState.SCHEDULED)
    assert advice.due_at is not None and advice.due_at >= fired.confirmed_at + 3600 - 1
    actions = [(r.actor, r.action, orjson.loads(r.detail).get("alert_id")) for r in await api.audit(limit=50)
               if r.action in ("fire", "confirm")]
    assert sorted(actions) == [("officer", "fire", alert_id), ("officer2", "confirm", alert_id)], actions


async def test_a_held_step_nobody_confirms_fails_and_sends_nothing(scheduled: tuple[Api, Host]) -> None:
    api, _ = scheduled
    run_id, alert_id = await start_held(api)
    said = await settle_held(api.app, time.time() + 601)  # the 10-minute window has closed
    assert said and alert_id in said[0]
    row = await step_row(api, run_id, "alert", state=StepState.FAILED)
    assert "not confirmed by a second officer" in (row.detail or "")
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2")
    assert status == 409, body
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert await api.audit("confirmation_expired")


async def test_stopping_the_run_withdraws_its_held_alert(scheduled: tuple[Api, Host]) -> None:
    api, _ = scheduled
    run_id, alert_id = await start_held(api)
    status, body = await api.post(f"/api/runbooks/runs/{run_id}/stop", {}, "officer")
    assert status == 200 and body["state"] == "stopped", body
    row = await step_row(api, run_id, "alert", state=StepState.SKIPPED)
    assert "withdrawn" in (row.detail or "")
    status, body = await api.post(f"/api/alerts/{alert_id}/confirm", QUAKE_CONFIRM, "officer2")
    assert status == 409 and "withdrawn" in body["message"], body
    assert provider_requests(api.providers) == [0, 0, 0, 0]
