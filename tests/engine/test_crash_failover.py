"""kill -9 during SMS failover, then ``broadcaster resume``: every phone gets exactly one SMS across Twilio and
Infobip, the CLI as a real process against the loopback fakes.

Twilio breaks a (random) few hundred SMS into a live fire: 503s, 500s after taking the message in, hangs (some
after taking it in: their answers are lost). Its circuit opens, the rest move to the Infobip channel, and while
Infobip sends them the process is killed. Twilio is back by the time ``resume`` runs: it finds what each provider
took in (Twilio by its message list, Infobip by our messageId in its logs) before sending anything again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from broadcaster.cli import main
from tests.engine.providers import REPO, SECRETS, Providers
from tests.fakes.infobip import FakeInfobip
from tests.fakes.server import Recorded, Step
from tests.fakes.twilio import FakeTwilio, hang, twilio_error
from tests.support import Reader, write_config

pytestmark = pytest.mark.slow

INFOBIP_KEY = "infobip-key-SECRET-0a0a"


class BreakableTwilio(FakeTwilio):
    """A fake Twilio that fails while ``broken`` (set from the test's thread)."""

    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng = random.Random(seed)
        self.broken = False

    def next_step(self, request: Recorded | None = None) -> Step | None:
        if not self.broken:
            return super().next_step(request)
        if request is None or request.method != "POST":
            return twilio_error(503, 20503, "down")
        return self.rng.choice([twilio_error(503, 20503, "down"), twilio_error(500, 20500, "took it, then fell"),
                                hang(1.0, accept=True), hang(1.0)])


def test_kill_9_during_failover_then_resume_gives_exactly_one_sms_per_phone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**SECRETS, "INFOBIP_API_KEY": INFOBIP_KEY}.items():
        monkeypatch.setenv(name, value)
    seed = random.Random().randrange(1000)
    rng = random.Random(seed)
    recipients = 2000
    p = Providers(tmp_path, recipients=recipients, latency=0.01, sms_rate=400)
    p.twilio = BreakableTwilio(seed, account_sid=SECRETS["TWILIO_ACCOUNT_SID"], latency=0.01)
    infobip = FakeInfobip(api_key=INFOBIP_KEY, latency=0.01)
    with p:
        p.call(infobip.start())
        try:
            channels = [c for c in p.default_channels() if c["id"] == "sms-residents"]
            channels[0].update(fallback="sms-infobip", timeout_s=0.3,
                               circuit={"failures": 5, "window_s": 10, "cooldown_s": 60})
            channels.append({"id": "sms-infobip", "kind": "sms", "provider": "infobip", "base_url": infobip.base_url,
                             "api_key_env": "INFOBIP_API_KEY", "from": "CivilDefence", "recipients": "residents.csv",
                             "rate_per_second": 400})
            write_config(tmp_path, channels, templates=str(REPO / "templates"), database="var/broadcaster.db")
            env = {**os.environ, **SECRETS, "INFOBIP_API_KEY": INFOBIP_KEY}
            process = subprocess.Popen(
                [sys.executable, "-m", "broadcaster", *p.cli("fire", "road_closure", "--use-examples", "--live",
                                                             "--yes", "--json", as_user="officer")],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            break_after, kill_after = rng.randint(100, 600), rng.randint(50, 400)
            deadline = time.monotonic() + 90
            while len(p.twilio.messages) < break_after:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the fire never got going"
                time.sleep(0.005)
            p.twilio.broken = True
            while len(infobip.messages) < kill_after:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, f"no failover to Infobip (seed {seed})"
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert process.stderr is not None
            process.stderr.close()
            at_kill = len(p.twilio.messages) + len(infobip.messages)
            assert at_kill < recipients, "killed too late to test anything"
            time.sleep(1.2)  # the hung requests land at Twilio (or not) before it comes back
            p.twilio.broken = False

            assert main(p.cli("resume")) == 0

            store = Reader(p.db)
            (alert,) = store.alerts()
            counts = store.state_counts(alert.id)
        finally:
            p.call(infobip.stop())

    per_phone = {phone: len(p.twilio.messages_to(phone)) + len(infobip.messages_to(phone)) for phone in p.phones}
    duplicates = {k: v for k, v in per_phone.items() if v > 1}
    missing = [k for k, v in per_phone.items() if v == 0]
    assert not duplicates and not missing, (seed, len(duplicates), len(missing), at_kill)
    assert {state for by_state in counts.values() for state in by_state} == {"sent"}, (seed, counts)
    assert sum(counts.get("sms-infobip", {}).values()) > 0, seed
