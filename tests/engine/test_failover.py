"""SMS failover end to end: the real twilio and infobip SDKs against their loopback fakes, the real dispatcher and
store. The fake Twilio goes down at a (seeded) random point of a 2,000-SMS live fire, answering 503s, 500s after
taking the message in, and hangs past the timeout (some after taking the message in: its answer is lost); it comes
back a second later. Every phone gets exactly one SMS across the two providers, counted at the fakes."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from broadcaster.channels.base import Channel, Clients, OutboundMessage, Receipt
from broadcaster.channels.registry import build_channels
from broadcaster.channels.sms import SmsChannel
from broadcaster.clock import Clock
from broadcaster.config import ChannelConfig
from broadcaster.engine.dispatcher import Dispatcher, Tuning
from broadcaster.engine.retry import RetryPolicy
from broadcaster.errors import DeliveryError, Reason
from broadcaster.service.metrics import Metrics
from broadcaster.states import CircuitState, DeliveryState, Mode, MsgType, Outcome
from broadcaster.store import Store, opened
from broadcaster.store.records import AlertRecord, MessageRecord, NewDelivery
from tests.engine.test_dispatcher import START, ScriptedChannel, config, run
from tests.fakes.infobip import FakeInfobip
from tests.fakes.server import Recorded, Step
from tests.fakes.twilio import FakeTwilio, hang, twilio_error
from tests.support import make_config

SID, TOKEN, KEY = "AC" + "7" * 32, "tok-FAILOVER-twilio", "ibkey-FAILOVER-infobip"
TEXT = "تحذير: فيضانات في وادي حتا. ابتعدوا عن الأودية."
PHONES = 2000


class FailingTwilio(FakeTwilio):
    """Fake Twilio that goes down at its ``fail_at``-th message request, for ``outage_s`` seconds."""

    def __init__(self, rng: random.Random, *, fail_at: int, outage_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng, self.fail_at, self.outage_s = rng, fail_at, outage_s
        self.down_since: float | None = None
        self.posts_seen = 0
        self.lost: list[str] = []  # phones whose message was taken in but whose answer never came

    def down(self) -> bool:
        now = asyncio.get_running_loop().time()
        return self.down_since is not None and now < self.down_since + self.outage_s

    def next_step(self, request: Recorded | None = None) -> Step | None:
        if request is None or request.method != "POST":
            return twilio_error(503, 20503, "down") if self.down() else None  # reconciling cannot ask either
        self.posts_seen += 1
        if self.posts_seen == self.fail_at:
            self.down_since = asyncio.get_running_loop().time()
        if not self.down():
            return None
        step = self.rng.choice([twilio_error(503, 20503, "down"), twilio_error(500, 20500, "took it, then fell"),
                                hang(1.0, accept=True), hang(1.0)])
        if step.accept:
            self.lost.append(request.form["To"])
        return step


async def commit(store: Store, channel_id: str, phones: list[str]) -> None:
    alert = AlertRecord(id="a1", template="flood", template_hash="h", mode=Mode.LIVE, msg_type=MsgType.ALERT,
                        references=None, sent_at=Clock().now(), expires_at=Clock().now() + 3600, areas=(),
                        channels=(channel_id,), inputs={}, forms={})

    async def batches() -> AsyncIterator[list[NewDelivery]]:
        yield [NewDelivery(channel_id, f"{channel_id}/ar", "ar", recipient=p) for p in phones]

    await store.alerts.create(alert, [MessageRecord(f"{channel_id}/ar", channel_id, "ar", TEXT)], batches())


def channels(tmp_path: Path, twilio: str, infobip: str, clients: Clients) -> dict[str, Channel]:
    config = make_config(tmp_path, [
        {"id": "sms-twilio", "kind": "sms", "account_sid_env": "FO_SID", "auth_token_env": "FO_TOKEN",
         "from": "+15005550006", "recipients": "r.csv", "api_base": twilio, "timeout_s": 0.3,
         "rate_per_second": 1000, "fallback": "sms-infobip",
         "circuit": {"failures": 5, "window_s": 10, "cooldown_s": 0.3}},
        {"id": "sms-infobip", "kind": "sms", "provider": "infobip", "base_url": infobip, "api_key_env": "FO_KEY",
         "from": "CivilDefence", "recipients": "r.csv", "timeout_s": 2.0, "rate_per_second": 1000},
    ])
    return {c.id: c for c in build_channels(config.channels, clients, mode="live")}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_phone_gets_exactly_one_sms_across_the_providers_when_twilio_fails_mid_fire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    for name, value in {"FO_SID": SID, "FO_TOKEN": TOKEN, "FO_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    rng = random.Random(seed)
    phones = [f"+97150{n:07d}" for n in range(PHONES)]
    async with (
        FailingTwilio(rng, fail_at=rng.randrange(100, 1500), outage_s=1.0, account_sid=SID, auth_token=TOKEN)
        as twilio,
        FakeInfobip(api_key=KEY) as infobip,
        opened(str(tmp_path / "t.db")) as store,
        Clients(recording=False) as clients,
    ):
        await commit(store, "sms-twilio", phones)
        open_channels = channels(tmp_path, twilio.base_url, infobip.base_url, clients)
        for channel in open_channels.values():
            await channel.open()
        metrics = Metrics(node="n1")
        dispatcher = Dispatcher(store, open_channels, policy=RetryPolicy(base_s=0.05, cap_s=0.2,
                                                                        reconcile_after_s=0.1),
                                tuning=Tuning(max_in_flight=32), rng=random.Random(seed),
                                observer=metrics.observer("live"))
        await dispatcher.run(["a1"])
        counts = await store.alerts.state_counts("a1")
        log = [a async for a in store.alerts.attempts("a1")]
        rows = await store.alerts.deliveries("a1")

    # Exactly one SMS per phone, counted where it matters: at the providers.
    per_phone = {p: len(twilio.messages_to(p)) + len(infobip.messages_to(p)) for p in phones}
    assert {n for n in per_phone.values()} == {1}
    assert len(twilio.messages) + len(infobip.messages) == PHONES
    # The failover really happened, and the lost answers were found by reconciliation, not sent again.
    failover = dispatcher.failovers["sms-twilio"]
    assert failover.moved > 0 and len(infobip.messages) > 0
    assert twilio.lost and all(len(twilio.messages_to(p)) == 1 for p in twilio.lost)
    assert any(a.outcome == Outcome.RECONCILED and a.channel == "sms-twilio" for a in log)
    assert sum(n for by_state in counts.values() for n in by_state.values()) == PHONES
    assert {state for by_state in counts.values() for state in by_state} == {"sent"}
    # Every move is in the delivery log; a delivery sent by Infobip says where it came from.
    moves = [a for a in log if a.outcome == Outcome.MOVED]
    assert moves and all(a.detail is not None and a.detail.startswith("moved ") for a in moves)
    assert any((a.detail or "").startswith("moved from sms-twilio to sms-infobip: circuit open after 5 ")
               for a in moves)
    on_infobip = [d for d in rows if d.channel_id == "sms-infobip"]
    assert on_infobip and all(d.moved_from == "sms-twilio" for d in on_infobip)
    assert all(infobip.messages_to(d.recipient or "") for d in on_infobip)
    # Twilio came back: the half-open trial (a reconcile) succeeded and the circuit closed.
    assert failover.circuit.state is CircuitState.CLOSED
    # The metrics saw every move and the circuit's state.
    exposed = (await metrics.render()).decode()
    moved = re.search(r'^broadcaster_failover_moves_total\{from_channel="sms-twilio",node="n1",'
                      r'to_channel="sms-infobip"\} (\S+)$', exposed, re.MULTILINE)
    assert moved is not None and float(moved.group(1)) == failover.moved
    assert 'broadcaster_circuit_state{channel="sms-twilio",node="n1"} 0.0' in exposed


class ReconcilingChannel(ScriptedChannel):
    """A scripted channel that can be asked what went out; its provider fails the first ``down`` questions."""

    can_reconcile = True

    def __init__(self, *args: Any, down: int) -> None:
        super().__init__(*args)
        self.down = down
        self.asked = 0

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        self.asked += 1
        if self.asked <= self.down:
            raise DeliveryError(Reason.SERVER, "503 while listing messages", retryable=True, http_status=503)
        return Receipt(provider_id="found-it", http_status=200)


def test_a_reconcile_the_provider_cannot_answer_leaves_the_delivery_unknown_never_resent(tmp_path: Path) -> None:
    """The request may have gone out; asking failed. It must be asked again, never sent again blindly."""
    clock = Clock(wall_start=START)
    lost = DeliveryError(Reason.TIMEOUT, "read timeout", retryable=True, sent_maybe=True)
    channel = ReconcilingChannel(config(tmp_path), clock, [lost], down=2)

    reader = run(tmp_path, [channel], clock, RetryPolicy(reconcile_after_s=1.0))

    assert channel.delivered == [] and channel.asked == 3
    [delivery] = reader.deliveries("a1")
    assert (delivery.state, delivery.provider_id) == (DeliveryState.SENT, "found-it")
    assert [a.outcome for a in reader.attempts("a1")] == [Outcome.UNKNOWN] * 3 + [Outcome.RECONCILED]


class ScriptedSms(SmsChannel):
    """An sms channel that never opens a client: fails every send with ``error``, or accepts it."""

    def __init__(self, config: ChannelConfig, error: DeliveryError | None) -> None:
        super().__init__(config, Clients(recording=True))
        self.error = error
        self.sent: list[str] = []

    async def send(self, message: OutboundMessage) -> Receipt:
        if self.error is not None:
            raise self.error
        self.sent.append(message.recipient or "")
        return Receipt(provider_id=f"ok-{len(self.sent)}", http_status=201)


class LostOnOpen:
    """A node's fence that stops holding the moment the circuit opens (the node stalled past its margin). Its
    ``wait`` does not block, as if the stall came after the dispatcher's own wait: the move must look itself."""

    id = "node-a"

    def __init__(self) -> None:
        self.lost = False

    def holds(self, owner: str) -> bool:
        return owner == self.id and not self.lost

    async def wait(self) -> None:
        return None

    def circuit(self, channel: str, state: CircuitState) -> None:  # the dispatcher's observer hook
        self.lost = self.lost or state is CircuitState.OPEN


async def test_a_node_whose_fence_no_longer_holds_moves_nothing(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    config = make_config(tmp_path, [
        {"id": "sms-a", "kind": "sms", "account_sid_env": "FO_SID", "auth_token_env": "FO_TOKEN",
         "from": "+15005550006", "recipients": "r.csv", "rate_per_second": 1000, "fallback": "sms-b",
         "circuit": {"failures": 3}},
        {"id": "sms-b", "kind": "sms", "account_sid_env": "FO_SID", "auth_token_env": "FO_TOKEN",
         "from": "+15005550007", "recipients": "r.csv", "rate_per_second": 1000},
    ])
    primary = ScriptedSms(config.channel("sms-a"), DeliveryError(Reason.SERVER, "503", retryable=True))
    fallback = ScriptedSms(config.channel("sms-b"), None)
    fence = LostOnOpen()
    async with opened(str(tmp_path / "t.db")) as store:
        await commit(store, "sms-a", [f"+97150{n:07d}" for n in range(50)])
        dispatcher = Dispatcher(store, {"sms-a": primary, "sms-b": fallback}, fence=fence, observer=fence,
                                tuning=Tuning(max_in_flight=1), policy=RetryPolicy(base_s=0.01, cap_s=0.01))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(dispatcher.run(["a1"]), 1.0)
        counts = await store.alerts.state_counts("a1")
        moves = [a async for a in store.alerts.attempts("a1") if a.outcome == Outcome.MOVED]

    assert dispatcher.failovers["sms-a"].circuit.state is CircuitState.OPEN and fence.lost
    assert moves == [] and fallback.sent == [] and "sms-b" not in counts


class SlowSms(ScriptedSms):
    """Accepts every SMS after ``delay`` seconds; can be asked what went out (it says: the lost one did)."""

    def __init__(self, config: ChannelConfig, script: list[DeliveryError | None], delay: float) -> None:
        super().__init__(config, None)
        self.script, self.delay = list(script), delay

    async def send(self, message: OutboundMessage) -> Receipt:
        await asyncio.sleep(self.delay)
        if self.script:
            step = self.script.pop(0)
            if step is not None:
                raise step
        return await super().send(message)

    async def reconcile(self, message: OutboundMessage, since: datetime) -> Receipt | None:
        self.sent.append(message.recipient or "")  # the timed-out request had gone out
        return Receipt(provider_id="found", http_status=200)


async def test_when_the_trial_succeeds_the_circuit_closes_and_what_the_fallback_has_not_sent_comes_back(
    tmp_path: Path,
) -> None:
    (tmp_path / "r.csv").write_text("phone,language,area\n", encoding="utf-8")
    config = make_config(tmp_path, [
        {"id": "sms-a", "kind": "sms", "account_sid_env": "FO_SID", "auth_token_env": "FO_TOKEN",
         "from": "+15005550006", "recipients": "r.csv", "rate_per_second": 1000, "fallback": "sms-b",
         "circuit": {"failures": 3, "cooldown_s": 0.2}},
        {"id": "sms-b", "kind": "sms", "account_sid_env": "FO_SID", "auth_token_env": "FO_TOKEN",
         "from": "+15005550007", "recipients": "r.csv", "rate_per_second": 20},
    ])
    lost = DeliveryError(Reason.TIMEOUT, "read timeout", retryable=True, sent_maybe=True)
    down = DeliveryError(Reason.SERVER, "503", retryable=True, http_status=503)
    primary = SlowSms(config.channel("sms-a"), [lost, down, down], 0.0)
    fallback = SlowSms(config.channel("sms-b"), [], 0.0)
    phones = [f"+97150{n:07d}" for n in range(100)]
    async with opened(str(tmp_path / "t.db")) as store:
        await commit(store, "sms-a", phones)
        dispatcher = Dispatcher(store, {"sms-a": primary, "sms-b": fallback}, tuning=Tuning(max_in_flight=1),
                                policy=RetryPolicy(base_s=0.01, cap_s=0.01, reconcile_after_s=0.1))
        await dispatcher.run(["a1"])
        log = [a async for a in store.alerts.attempts("a1")]

    assert sorted(primary.sent + fallback.sent) == sorted(phones)  # each phone once, across the two
    assert dispatcher.failovers["sms-a"].circuit.state is CircuitState.CLOSED
    away = [a for a in log if a.outcome == Outcome.MOVED and a.channel == "sms-b"]
    back = [a for a in log if a.outcome == Outcome.MOVED and a.channel == "sms-a"]
    assert away and back and fallback.sent, (len(away), len(back), len(fallback.sent))
    assert all((a.detail or "").startswith("moved back from sms-b to sms-a: its circuit closed") for a in back)
    assert any(a.outcome == Outcome.RECONCILED and a.channel == "sms-a" for a in log)  # the trial
