"""Dispatcher semantics on a virtual clock: backoff, expiry, rate limits, isolation."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.channels.base import Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.webhook import WebhookChannel
from broadcaster.clock import Clock, run_virtual
from broadcaster.config import ChannelConfig
from broadcaster.engine.dispatcher import Dispatcher
from broadcaster.engine.ratelimit import RateLimiter
from broadcaster.engine.retry import RetryPolicy
from broadcaster.errors import DeliveryError, Reason
from broadcaster.states import DeliveryState, Mode, MsgType, OnUnknown
from broadcaster.store import Store, opened
from broadcaster.store.records import AlertRecord, MessageRecord, NewDelivery
from tests.fakes.webhook import FakeWebhook
from tests.support import Reader, channel_config

START = 1_800_000_000.0


class ScriptedChannel(WebhookChannel):
    """In-memory channel: answers from a script, records when each attempt started (never opened)."""

    def __init__(self, config: ChannelConfig, clock: Clock, script: list[DeliveryError | None]) -> None:
        super().__init__(config, Clients(recording=True))
        self.clock = clock
        self.script: deque[DeliveryError | None] = deque(script)
        self.started: list[float] = []
        self.delivered: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> Receipt:
        self.started.append(self.clock.now())
        step = self.script.popleft() if self.script else None
        if step is not None:
            raise step
        self.delivered.append(message)
        return Receipt(provider_id=f"id-{len(self.delivered)}", http_status=200)


@pytest.fixture(autouse=True)
def _mkdirs(tmp_path: Path) -> None:
    """Two channel configs per test need two channels.toml folders."""
    (tmp_path / "s").mkdir(exist_ok=True)
    (tmp_path / "f").mkdir(exist_ok=True)


def server_error() -> DeliveryError:
    return DeliveryError(Reason.SERVER, "503", retryable=True, http_status=503)


def config(tmp_path: Path, cid: str = "hook", rate: float = 10.0) -> ChannelConfig:
    return channel_config(tmp_path, id=cid, kind="webhook", url="http://127.0.0.1:9/x", secret_env="HOOK_SECRET",
                          rate_per_second=rate)


async def add_alert(store: Store, channels: list[str], *, count: int = 1, expires_in: float = 3600,
                    alert_id: str = "a1", payload: bytes | None = None) -> None:
    alert = AlertRecord(id=alert_id, template="t", template_hash="h", mode=Mode.LIVE, msg_type=MsgType.ALERT,
                        references=None, sent_at=START, expires_at=START + expires_in, areas=(),
                        channels=tuple(channels), inputs={}, forms={})
    messages = [MessageRecord(key=f"{c}/ar", channel_id=c, language="ar", text="نص", payload=payload) for c in channels]
    deliveries = [NewDelivery(c, f"{c}/ar", "ar") for c in channels for _ in range(count)]

    async def one_batch() -> AsyncIterator[list[NewDelivery]]:
        yield deliveries

    await store.alerts.create(alert, messages, one_batch())


def run(tmp_path: Path, channels: list[Channel], clock: Clock, policy: RetryPolicy | None = None, *,
        count: int = 1, expires_in: float = 3600) -> Reader:
    """Commit one alert to every channel, then deliver it on a virtual clock; the database to read it back."""
    database = str(tmp_path / "t.db")

    async def main() -> None:
        async with opened(database) as store:
            await add_alert(store, [c.id for c in channels], count=count, expires_in=expires_in)
            dispatcher = Dispatcher(store, {c.id: c for c in channels}, clock=clock, policy=policy,
                                    rng=random.Random(7))
            await dispatcher.run()

    run_virtual(main())
    return Reader(database)


def test_retries_stop_at_expiry_and_no_attempt_starts_after_it(tmp_path: Path) -> None:
    clock = Clock(wall_start=START)
    channel = ScriptedChannel(config(tmp_path), clock, [server_error()] * 1000)
    store = run(tmp_path, [channel], clock, RetryPolicy(base_s=1, cap_s=30), expires_in=120)
    (delivery,) = store.deliveries("a1")
    assert delivery.state == "failed"
    assert "expires" in (delivery.last_error or "")
    assert len(channel.started) > 3  # it did keep trying, with backoff, not a fixed count
    assert max(channel.started) < START + 120
    assert all(b >= a for a, b in zip(channel.started, channel.started[1:], strict=False))


def test_an_alert_already_expired_is_never_attempted(tmp_path: Path) -> None:
    clock = Clock(wall_start=START + 61)
    channel = ScriptedChannel(config(tmp_path), clock, [])
    store = run(tmp_path, [channel], clock, count=3, expires_in=60)
    assert channel.started == []
    assert {d.state for d in store.deliveries("a1")} == {"expired"}
    assert list(store.attempts("a1")) == []


def test_permanent_error_is_not_retried(tmp_path: Path) -> None:
    clock = Clock(wall_start=START)
    gone = DeliveryError(Reason.RECIPIENT_GONE, "blocked", retryable=False, http_status=403)
    channel = ScriptedChannel(config(tmp_path), clock, [gone])
    store = run(tmp_path, [channel], clock)
    assert len(channel.started) == 1
    assert [a.outcome for a in store.attempts("a1")] == ["failed"]


def test_rate_limit_is_held_and_nearly_reached(tmp_path: Path) -> None:
    clock = Clock(wall_start=START)
    channel = ScriptedChannel(config(tmp_path, rate=20.0), clock, [])
    run(tmp_path, [channel], clock, count=201)
    starts = channel.started
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 0.95 * 20 <= achieved <= 20.0 + 1e-3
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 1 / 20 - 1e-6  # float resolution at epoch-sized timestamps


def test_a_429_pauses_only_its_own_channel(tmp_path: Path) -> None:
    clock = Clock(wall_start=START)
    limited = DeliveryError(Reason.RATE_LIMITED, "429", retryable=True, retry_after=30, http_status=429)
    slow = ScriptedChannel(config(tmp_path / "s", "slow", rate=10), clock, [limited])
    fast = ScriptedChannel(config(tmp_path / "f", "fast", rate=10), clock, [])
    run(tmp_path, [slow, fast], clock, count=20)
    assert len(fast.delivered) == 20 and len(slow.delivered) == 20
    assert max(fast.started) < START + 3  # 20 at 10/s: untouched by the other channel's pause
    assert min(s for s in slow.started[1:]) >= START + 30  # the paused channel waited retry_after


@settings(max_examples=50, deadline=None)
@given(attempt=st.integers(1, 30), retry_after=st.none() | st.floats(0, 600), seed=st.integers(0, 2**32))
def test_backoff_is_full_jitter_under_the_cap_and_honours_retry_after(
    attempt: int, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy(base_s=1, cap_s=60)
    delay = policy.delay(attempt, retry_after, random.Random(seed))
    ceiling = min(60, 2 ** (attempt - 1))
    assert 0 <= delay <= max(ceiling, retry_after or 0)
    if retry_after is not None:
        assert delay >= retry_after
    assert policy.next_attempt_at(100.0, attempt, retry_after, 100.0 + delay, random.Random(seed)) is None


def test_rate_limiter_pause_pushes_every_slot() -> None:
    async def scenario() -> list[float]:
        clock = Clock(wall_start=START)
        limiter = RateLimiter(5, clock)
        times = []
        for i in range(6):
            if i == 3:
                await limiter.pause(10)
            await limiter.acquire()
            times.append(clock.monotonic())
        return times

    times = run_virtual(scenario())
    assert times[3] - times[2] >= 10 - 1e-6
    assert all(b - a >= 0.2 - 1e-6 for a, b in itertools.pairwise(times))


def test_database_latency_never_distorts_simulated_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry-run's clock is virtual; real time spent waiting on the database must not leak into it."""
    from broadcaster.clock import in_thread
    from broadcaster.store import sqlite_db

    def rate_limited_run(folder: Path) -> list[float]:
        folder.mkdir()
        clock = Clock(wall_start=START)
        channel = ScriptedChannel(config(folder, rate=20.0), clock, [server_error()] * 3)
        run(folder, [channel], clock, RetryPolicy(base_s=1, cap_s=4), count=30)
        return channel.started

    at_once = rate_limited_run(tmp_path / "fast")
    for cls in (sqlite_db.SqliteDatabase, sqlite_db._Transaction):
        answer = cls.execute

        async def slowly(self: object, sql: str, params: Any = (), _answer: Any = answer) -> Any:
            await in_thread(time.sleep, 0.01)  # a database 10 ms away, for every statement
            return await _answer(self, sql, params)

        monkeypatch.setattr(cls, "execute", slowly)
    began = time.monotonic()
    slow = rate_limited_run(tmp_path / "slow")
    assert time.monotonic() - began > 0.2  # the database really was slow
    assert slow == at_once  # and simulated time did not notice


class LastLookFence:
    """Holds when the attempt starts, then no longer when the transport takes its last look (a stall between)."""

    id = "node-a"

    def __init__(self) -> None:
        self.looks = 0

    def holds(self, owner: str) -> bool:
        self.looks += 1
        return owner == self.id and self.looks == 1

    async def wait(self) -> None:
        return None


async def test_a_fence_lost_while_the_sdk_prepares_sends_nothing_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatcher's check passed, the gate's did not: no request reached the partner, no attempt was written."""
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    fence = LastLookFence()
    async with FakeWebhook("s3cret") as fake, opened(str(tmp_path / "t.db")) as store, Clients(recording=False) as live:
        await add_alert(store, ["hook"], payload=b'{"alert_id": "a1"}')
        table = {"id": "hook", "kind": "webhook", "url": "https://partner.example/in", "secret_env": "HOOK_SECRET",
                 "api_base": fake.base_url}
        async with WebhookChannel(channel_config(tmp_path, **table), live) as channel:
            dispatcher = Dispatcher(store, {"hook": channel}, fence=fence, clock=Clock(wall_start=START))
            running = asyncio.create_task(dispatcher.run(["a1"]))
            # The abandoned lease keeps the run waiting for its expiry, so watch for the abandonment instead.
            while dispatcher.abandoned == 0 and not running.done():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        [delivery] = await store.alerts.deliveries("a1")
        attempts = [a async for a in store.alerts.attempts("a1")]

    assert (dispatcher.abandoned, fence.looks, running.exception() if not running.cancelled() else None) == (1, 2, None)
    assert fake.requests == [] and fake.deliveries == []
    # Still leased to the stalled node: recovery turns it unknown, and reconciliation decides.
    assert delivery.state == DeliveryState.SENDING
    assert [a.outcome for a in attempts] == [None]


class HoldingChannel(ScriptedChannel):
    """A channel that cannot be asked what went out and never resends blindly (Telegram's ``hold``)."""

    @property
    def on_unknown(self) -> OnUnknown:
        return OnUnknown.HOLD


def test_a_delivery_recovered_from_a_stopped_node_is_held_not_resent_on_a_hold_channel(tmp_path: Path) -> None:
    clock = Clock(wall_start=START)
    channel = HoldingChannel(config(tmp_path), clock, [])
    database = str(tmp_path / "t.db")

    async def main() -> None:
        async with opened(database) as store:
            await add_alert(store, [channel.id])
            await store.leases.claim(channel.id, limit=1, now=START, lease_s=60, owner="dead:1:x")
            assert await store.leases.recover(START + 1, {"dead:1:x"}) == 1  # the node died mid-attempt
            await Dispatcher(store, {channel.id: channel}, clock=clock, rng=random.Random(7)).run()

    run_virtual(main())
    assert channel.started == []  # nothing sent again
    (delivery,) = Reader(database).deliveries("a1")
    assert delivery.state == DeliveryState.UNKNOWN
    assert [h.id for h in Reader(database).held()] == [delivery.id]  # listed for an operator
