"""The service on PostgreSQL: a live fire, its reads, the audit chain and the metrics, as on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from broadcaster.audit import AuditLog
from broadcaster.cli import main
from tests.engine.providers import Providers
from tests.service.support import Api, serving


@pytest.fixture
async def pg_api(providers: Providers, pg_url: str) -> AsyncIterator[Api]:
    # The CLI runs its own event loop: on a thread of its own, as this fixture runs on the test's.
    assert await asyncio.to_thread(main, ["--db", pg_url, "db", "upgrade"]) == 0
    async with serving(providers, pg_url) as service_api:
        yield service_api


async def test_a_live_fire_through_the_service_on_postgresql(pg_api: Api) -> None:
    status, body = await pg_api.fire("officer", mode="live")
    assert status == 202, body
    alert_id = body["alert_id"]
    await pg_api.settle()
    p = pg_api.providers
    assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)
    assert len(p.x.tweets) == 2 and len(p.telegram.sent) == 1
    assert [d.path for d in p.webhook.deliveries] == ["/alerts"]  # never partner-drills (exercise = true)
    status, view = await pg_api.get(f"/api/alerts/{alert_id}")
    assert status == 200 and view["counts"]["sms-residents"] == {"sent": 3}
    status, feed = await pg_api.get("/api/alerts")
    assert status == 200 and alert_id in str(feed)
    verdict = await AuditLog(pg_api.app.store.db).verify()
    assert verdict.ok and verdict.rows >= 2  # the config load and the fire, chained
    _status, metrics = await pg_api.get("/metrics")
    assert f'node="{pg_api.service.node_id}"' in metrics.decode()
