"""Scenario 18: SMS failover, Twilio to Infobip (issue 14).

One live fire of ``count`` SMS to a Twilio channel whose ``fallback`` is an Infobip channel, both at the same
``rate_per_second``. The fake Twilio answers 503 to every message request from the ``count // 3``-th on (it does
not come back). Measured:

* from the moment the circuit opens (``Failover.opened_at``, the engine's monotonic clock) to the first SMS
  the fake Infobip receives (stamped with the same clock when its handler starts): bound 1 s;
* the SMS/s through the fallback (Infobip arrivals, first to last) against the primary's before the outage
  (Twilio accepted sends, first to last): target within 10 %.

Unlike the other scenarios, the fakes run in this process, on the engine's loop (the loopback fakes of the test
suite, ``tests/fakes/twilio.py`` and ``tests/fakes/infobip.py``): at this rate the CPU is not the limit, the
rate limiter is, and one clock serves both stamps. The engine is the real one: ``Dispatcher`` over SQLite, the
twilio SDK and Infobip's SDK (on worker threads), as ``broadcaster fire`` runs it after the outbox commit.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.report import add, heading, say
from broadcaster.channels.base import Clients
from broadcaster.channels.registry import KINDS, build_channels
from broadcaster.clock import Clock
from broadcaster.config import load_config
from broadcaster.engine.dispatcher import Dispatcher
from broadcaster.engine.retry import RetryPolicy
from broadcaster.states import Mode, MsgType
from broadcaster.store import opened
from broadcaster.store.records import AlertRecord, MessageRecord, NewDelivery
from tests.fakes.infobip import FakeInfobip
from tests.fakes.server import Recorded, Step
from tests.fakes.twilio import FakeTwilio, twilio_error

SID, TOKEN, KEY = "AC" + "8" * 32, "bench-twilio-token", "bench-infobip-key"
TEXT = "تحذير: إغلاق الطريق E11 بسبب حادث. استخدموا الطريق البديل."
RATE = 100.0
LATENCY_S = 0.02
FIRST_BOUND_S = 1.0
RATIO_TARGET = 0.10


class _StampedTwilio(FakeTwilio):
    """Down (503) from the ``fail_at``-th message request; stamps each accepted send's arrival."""

    def __init__(self, fail_at: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_at, self.seen = fail_at, 0
        self.accepted: list[float] = []

    def next_step(self, request: Recorded | None = None) -> Step | None:
        if request is None or request.method != "POST":
            return None
        self.seen += 1
        if self.seen >= self.fail_at:
            return twilio_error(503, 20503, "Service unavailable")
        self.accepted.append(asyncio.get_running_loop().time())
        return None


class _StampedInfobip(FakeInfobip):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: list[float] = []
        self.app.middlewares.append(self._stamp)

    @web.middleware
    async def _stamp(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST":
            self.arrivals.append(asyncio.get_running_loop().time())
        response: web.StreamResponse = await handler(request)
        return response


def _rate(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else 0.0


async def _run(work: Path, count: int) -> dict[str, float]:
    os.environ.update({"BENCH_FO_SID": SID, "BENCH_FO_TOKEN": TOKEN, "BENCH_FO_KEY": KEY})
    (work / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    async with (
        _StampedTwilio(count // 3, account_sid=SID, auth_token=TOKEN, latency=LATENCY_S) as twilio,
        _StampedInfobip(api_key=KEY, latency=LATENCY_S) as infobip,
        opened(str(work / "failover.db")) as store,
        Clients(recording=False) as clients,
    ):
        (work / "channels.toml").write_text(f"""[broadcaster]
sender = "bench.example"
timezone = "Asia/Dubai"

[[channel]]
id = "sms-twilio"
kind = "sms"
account_sid_env = "BENCH_FO_SID"
auth_token_env = "BENCH_FO_TOKEN"
from = "+15005550006"
recipients = "r.csv"
api_base = "{twilio.base_url}"
rate_per_second = {RATE}
fallback = "sms-infobip"
circuit = {{ failures = 5, window_s = 10, cooldown_s = 600 }}

[[channel]]
id = "sms-infobip"
kind = "sms"
provider = "infobip"
base_url = "{infobip.base_url}"
api_key_env = "BENCH_FO_KEY"
from = "CivilDefence"
recipients = "r.csv"
rate_per_second = {RATE}
""", encoding="utf-8")
        config = load_config(work / "channels.toml", KINDS)
        channels = {c.id: c for c in build_channels(config.channels, clients, mode="live")}
        for channel in channels.values():
            await channel.open()
        now = Clock().now()
        alert = AlertRecord(id="bench-fo", template="road_closure", template_hash="h", mode=Mode.LIVE,
                            msg_type=MsgType.ALERT, references=None, sent_at=now, expires_at=now + 3600, areas=(),
                            channels=("sms-twilio",), inputs={}, forms={})

        async def batches() -> AsyncIterator[list[NewDelivery]]:
            yield [NewDelivery("sms-twilio", "sms-twilio/ar", "ar", recipient=f"+97150{n:07d}") for n in range(count)]

        await store.alerts.create(alert, [MessageRecord("sms-twilio/ar", "sms-twilio", "ar", TEXT)], batches())
        dispatcher = Dispatcher(store, channels, policy=RetryPolicy(base_s=0.05, cap_s=0.5), rng=random.Random(18))
        started = time.monotonic()
        await dispatcher.run(["bench-fo"])
        wall = time.monotonic() - started
        failover = dispatcher.failovers["sms-twilio"]
        assert failover.opened_at is not None, "the circuit never opened"
        phones = {m["to"] for m in twilio.messages} | {m["to"] for m in infobip.messages}
        return {"first_s": infobip.arrivals[0] - failover.opened_at, "primary": _rate(twilio.accepted),
                "fallback": _rate(infobip.arrivals), "moved": float(failover.moved), "wall": wall,
                "twilio": float(len(twilio.messages)), "infobip": float(len(infobip.messages)),
                "phones": float(len(phones)), "total": float(len(twilio.messages) + len(infobip.messages))}


def scenario_failover(count: int) -> None:
    heading("19", f"SMS failover: Twilio down after {count // 3} of {count} SMS, Infobip takes over",
            f"both channels at {RATE:g} SMS/s, {LATENCY_S * 1000:.0f} ms provider latency; circuit opens after "
            "5 server errors in a row; fakes in this process")
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        r = asyncio.run(_run(Path(tmp), count))
    say(f"    {r['twilio']:.0f} SMS through Twilio, {r['infobip']:.0f} through Infobip ({r['moved']:.0f} moved), "
        f"{r['phones']:.0f} phones of {count}; {r['wall']:.1f} s wall")
    add("19 failover", "every phone exactly one SMS", f"{r['total']:.0f} / {r['phones']:.0f}",
        f"= {count}", r["total"] == r["phones"] == count)
    add("19 failover", "circuit open -> first SMS via fallback", f"{r['first_s'] * 1000:.0f} ms",
        f"<= {FIRST_BOUND_S * 1000:.0f} ms", r["first_s"] <= FIRST_BOUND_S)
    ratio = r["fallback"] / r["primary"] if r["primary"] else 0.0
    add("19 failover", "SMS/s fallback vs primary", f"{r['fallback']:.1f} / {r['primary']:.1f}",
        f"within {RATIO_TARGET:.0%}", abs(ratio - 1) <= RATIO_TARGET)
