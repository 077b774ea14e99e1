"""The after-action report against a live fire with scripted faults, on both backends.

Twilio refuses one SMS (a permanent failure), the partner webhook answers 503 once
(a retry, then sent), and a signed status callback receipts one SMS as delivered.
Every figure is checked against the stored rows, never against hard-coded numbers.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from broadcaster.app.report import build_report, percentile, reason_of
from broadcaster.cli import main
from broadcaster.engine.retry import RetryPolicy
from broadcaster.states import Outcome
from tests.engine.providers import SECRETS, Providers
from tests.fakes.twilio import twilio_error
from tests.fakes.webhook import webhook_error
from tests.service.conftest import drill_channels
from tests.service.support import PUBLIC_URL, Api, rewrite_config, serving
from tests.service.test_receipts import callback, receipt, signed

FAST = RetryPolicy(base_s=0.02, cap_s=0.1, reconcile_after_s=0.2)
INVALID_TO = "The 'To' number is not a valid phone number."


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def providers(tmp_path: Path) -> Iterator[Providers]:
    with Providers(tmp_path, recipients=3) as p:
        rewrite_config(p, extra=drill_channels(p), public_url=PUBLIC_URL)
        yield p


@pytest.fixture(params=["sqlite", "postgresql"])
async def api(request: pytest.FixtureRequest, providers: Providers) -> AsyncIterator[Api]:
    database = None
    if request.param == "postgresql":
        database = request.getfixturevalue("pg_url")
        assert await asyncio.to_thread(main, ["--db", database, "db", "upgrade"]) == 0
    async with serving(providers, database, policy=FAST) as service_api:
        yield service_api


async def finished(api: Api, alert_id: str) -> None:
    """Wait until no delivery of the alert is pending or in flight (a retry may be picked up by the worker)."""
    await api.settle()
    while alert_id in await api.app.store.alerts.unfinished():
        await asyncio.sleep(0.02)
        await api.settle()


async def fire_with_faults(api: Api) -> str:
    api.providers.twilio.script(twilio_error(400, 21211, INVALID_TO))
    api.providers.webhook.script(webhook_error(503, retry_after=0))
    status, body = await api.fire("officer", mode="live")
    assert status == 202, body
    await finished(api, body["alert_id"])
    return str(body["alert_id"])


async def test_the_report_of_a_fire_with_faults_matches_the_stored_rows(api: Api) -> None:
    alert_id = await fire_with_faults(api)
    store = api.app.store
    deliveries = await store.alerts.deliveries(alert_id)
    attempts = [a async for a in store.alerts.attempts(alert_id)]
    alert = await store.alerts.get(alert_id)
    receipted = next(d for d in deliveries if d.channel_id == "sms-residents" and d.provider_id)
    form = receipt(str(receipted.provider_id), "delivered")
    assert await callback(api, form, signed(form)) == 204

    report = (await build_report(api.app, alert_id, now=alert.sent_at + 60)).as_json()

    # Reach: every delivery counted once, by channel, language and final state; the receipt on top.
    expected: dict[tuple[str, str], dict[str, int]] = {}
    for d in deliveries:
        states = expected.setdefault((d.channel_id, d.language), {})
        states[d.state] = states.get(d.state, 0) + 1
    assert {(r["channel"], r["language"]): r["states"] for r in report["reach"]} == expected
    for r in report["reach"]:
        listed = sum(1 for d in deliveries if (d.channel_id, d.language) == (r["channel"], r["language"])
                     and d.recipient is not None)
        assert r["recipients"] == listed
        if (r["channel"], r["language"]) == ("sms-residents", receipted.language):
            assert (r["delivered"], r["undelivered"]) == (1, 0)
        else:
            assert r["delivered"] is None
    assert sum(r["states"].get("failed", 0) for r in report["reach"]) == 1

    # Failures by reason: Twilio's refusal (21211: recipient_gone, final) and the webhook's 503 (server, retried).
    failures = {f["reason"]: f for f in report["failures"]}
    assert set(failures) == {"recipient_gone", "server"}
    refused = next(a for a in attempts if a.outcome == Outcome.FAILED)
    assert refused.detail is not None and refused.detail.startswith("recipient_gone:")
    assert (failures["recipient_gone"]["attempts"], failures["recipient_gone"]["final"]) == (1, 1)
    assert failures["recipient_gone"]["channels"] == ["sms-residents"]
    assert failures["recipient_gone"]["example"] == refused.detail and INVALID_TO in refused.detail
    assert (failures["server"]["attempts"], failures["server"]["final"]) == (1, 0)
    assert failures["server"]["channels"] == ["partner-hook"]
    assert report["retries"] == {"partner-hook": 1} and report["total_retries"] == 1
    assert report["retries"] == {a.channel: 1 for a in attempts if a.attempt > 1}

    # Latency: commit (the alert's sent_at) to each accepted attempt, nearest-rank percentiles.
    accepted: dict[str, list[float]] = {}
    for a in attempts:
        if a.outcome == Outcome.SENT:
            assert a.finished_at is not None
            accepted.setdefault(a.channel, []).append(a.finished_at - alert.sent_at)
    assert [x["channel"] for x in report["latency"]] == sorted(accepted)
    for x in report["latency"]:
        values = sorted(accepted[x["channel"]])
        assert x["accepted"] == len(values)
        for p in (50, 90, 99):
            assert x[f"p{p}_s"] == round(values[math.ceil(p / 100 * len(values)) - 1], 3)
        assert x["max_s"] == round(values[-1], 3)
    # The timeline ends, per channel, at every accepted delivery.
    assert {c: points[-1][1] for c, points in report["timeline"].items()} == {c: len(v) for c, v in accepted.items()}

    # The texts as each channel got them, and a thread of one.
    messages = await store.alerts.messages(alert_id)
    assert {(m["channel"], m["language"]) for m in report["messages"]} == {(m.channel_id, m.language)
                                                                          for m in messages}
    assert [t["alert_id"] for t in report["thread"]] == [alert_id]
    assert report["time_to_correct_s"] is None
    assert report["thread"][0]["link"] == f"{PUBLIC_URL}/cap/{alert_id}.xml"


async def test_an_updated_then_cancelled_alert_reports_its_thread_and_time_to_correct(api: Api) -> None:
    status, body = await api.fire("officer", mode="live")
    assert status == 202, body
    original = body["alert_id"]
    await finished(api, original)
    status, update = await api.post(f"/api/alerts/{original}/update",
                                    {"mode": "live", "confirm": "road_closure", "variables": {"reason": "flooding"}})
    assert status == 202, update
    await finished(api, update["alert_id"])
    status, cancel = await api.post(f"/api/alerts/{original}/cancel", {"mode": "live", "confirm": "cancel"})
    assert status == 202, cancel
    await finished(api, cancel["alert_id"])
    store = api.app.store
    root = await store.alerts.get(original)

    for asked in (original, update["alert_id"], cancel["alert_id"]):  # the same thread from any of its alerts
        report = (await build_report(api.app, asked, now=root.sent_at + 60)).as_json()
        thread = report["thread"]
        assert [(t["alert_id"], t["msg_type"]) for t in thread] == [
            (original, "Alert"), (update["alert_id"], "Update"), (cancel["alert_id"], "Cancel")]
        assert thread[0]["time_to_correct_s"] is None
        for entry in thread[1:]:
            first = min([a.finished_at async for a in store.alerts.attempts(entry["alert_id"])
                         if a.outcome == Outcome.SENT and a.finished_at is not None])
            assert entry["time_to_correct_s"] == round(first - root.sent_at, 3)
        assert report["time_to_correct_s"] == thread[1]["time_to_correct_s"]


def test_percentiles_are_nearest_rank_and_reasons_come_from_the_stored_detail() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([7.0], 99) == 7.0
    assert reason_of(Outcome.FAILED, "timeout: read timed out") == "timeout"
    assert reason_of(Outcome.EXPIRED, "the alert expired") == "expired"
    assert reason_of(Outcome.RETRY, "something: else") == "other"
    assert reason_of(Outcome.RETRY, None) == "other"
