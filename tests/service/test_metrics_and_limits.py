"""``/metrics`` in Prometheus format, and the per-user firing limit (429, audited once per burst)."""

from __future__ import annotations

import re

import orjson

from broadcaster.engine.ratelimit import RateLimiter
from broadcaster.engine.retry import RetryPolicy
from broadcaster.service.state import Limits
from tests.engine.providers import Providers
from tests.fakes.webhook import webhook_error
from tests.service.support import ManualClock, serving
from tests.support import reopen

FAST = RetryPolicy(base_s=0.02, cap_s=0.1, reconcile_after_s=0.2)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample; labels must match exactly those given (in any order), plus a ``node``."""
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if not found.pop("node", ""):  # every series names the node reporting it
            continue
        if found == labels:
            return float(match.group(3))
    raise AssertionError(f"no sample {name}{labels}")


async def test_metrics_count_deliveries_retries_latency_depth_and_first_send(providers: Providers) -> None:
    async with serving(providers, policy=FAST) as api:
        providers.webhook.script(webhook_error(503, retry_after=0))
        status, _body = await api.fire("officer", mode="live")
        assert status == 202
        await api.settle()
        status, raw = await api.get("/metrics")
        assert status == 200
        text = raw.decode()
        assert sample(text, "broadcaster_deliveries_total", channel="sms-residents", mode="live",
                      outcome="sent") == 3
        assert sample(text, "broadcaster_deliveries_total", channel="partner-hook", mode="live", outcome="retry") == 1
        assert sample(text, "broadcaster_retries_total", channel="partner-hook", mode="live") == 1
        assert sample(text, "broadcaster_attempt_latency_seconds_count", channel="x-authority") == 2
        assert sample(text, "broadcaster_fire_to_first_send_seconds_count", mode="live") == 1
        assert sample(text, "broadcaster_fires_total", mode="live", state="sending") == 1
        assert "broadcaster_queue_depth" in text
        # Queue depth is read from the store when scraped.
        await reopen(api.app.store.db, "UPDATE deliveries SET state = 'pending' WHERE channel_id = 'sms-residents'")
        status, raw = await api.get("/metrics")
        assert sample(raw.decode(), "broadcaster_queue_depth", channel="sms-residents", state="pending") == 3
        # Dry-runs are counted under their own mode; their virtual latencies are not observed.
        await api.fire("officer", mode="dry-run")
        await api.settle()
        status, raw = await api.get("/metrics")
        text = raw.decode()
        assert sample(text, "broadcaster_deliveries_total", channel="x-authority", mode="dry-run", outcome="sent") == 2
        assert sample(text, "broadcaster_attempt_latency_seconds_count", channel="x-authority") == 2


async def test_a_burst_of_fires_gets_429_and_is_audited_once(providers: Providers) -> None:
    clock = ManualClock()
    async with serving(providers, clock=clock, limits=Limits(fire_rate_per_second=1 / 60, fire_burst=3)) as api:
        answers = [await api.fire("operator", mode="dry-run") for _ in range(6)]
        assert [status for status, _ in answers] == [202, 202, 202, 429, 429, 429], answers
        status, body = await api.fire("operator", mode="dry-run")
        assert status == 429 and body["error"] == "rate_limited"
        # Other users, and reading, are not limited.
        assert (await api.fire("officer", mode="dry-run"))[0] == 202
        assert (await api.post("/api/preview", {"template": "road_closure", "use_examples": True}, "operator"))[0] \
            == 200
        (row,) = await api.audit("rate_limited")
        assert row.actor == "operator" and orjson.loads(row.detail)["path"] == "/api/alerts"
        # The rate refills with time; the next burst is recorded again.
        clock.advance(60)
        assert (await api.fire("operator", mode="dry-run"))[0] == 202
        assert (await api.fire("operator", mode="dry-run"))[0] == 429
        assert len(await api.audit("rate_limited")) == 2
        await api.settle()
        # Refused fires stored nothing.
        assert len(await api.app.store.alerts.recent()) == 5


async def test_a_refused_request_costs_no_slot(providers: Providers) -> None:
    limits = Limits(fire_rate_per_second=1 / 60, fire_burst=1)
    async with serving(providers, clock=ManualClock(), limits=limits) as api:
        assert (await api.fire("viewer", mode="dry-run"))[0] == 403
        assert (await api.fire("operator", mode="loud"))[0] == 400
        assert (await api.fire("operator", mode="dry-run"))[0] == 202
        await api.settle()


async def test_try_acquire_never_waits_and_respects_burst_rate_and_pause() -> None:
    clock = ManualClock(start=0.0)
    limiter = RateLimiter(2.0, clock, burst=3)  # a slot every 0.5 s, three at once after idling
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert [limiter.try_acquire(), limiter.try_acquire()] == [True, False]
    await limiter.pause(10)
    clock.advance(5)
    assert limiter.try_acquire() is False
    clock.advance(5)
    assert limiter.try_acquire() is True
