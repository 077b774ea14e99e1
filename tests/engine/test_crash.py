"""kill -9 mid-fan-out, then resume: every recipient gets exactly one SMS."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broadcaster.cli import main
from tests.engine.providers import SECRETS, Providers
from tests.support import Reader

pytestmark = pytest.mark.slow


def test_kill_9_mid_fan_out_then_resume_gives_exactly_one_sms_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    recipients = 2000
    with Providers(tmp_path, recipients=recipients, latency=0.02, sms_rate=400) as p:
        env = {**os.environ, **SECRETS}
        process = subprocess.Popen(
            [sys.executable, "-m", "broadcaster", *p.cli("fire", "road_closure", "--use-examples", "--live",
                                                         "--yes", "--json", "--channels", "sms-residents",
                                                         as_user="officer")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        kill_after = random.Random().randint(100, 1500)  # a random point in the fan-out
        deadline = time.monotonic() + 60
        while len(p.twilio.messages) < kill_after:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the fire never got going"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
        accepted_at_kill = len(p.twilio.messages)
        assert accepted_at_kill < recipients, "killed too late to test anything"
        time.sleep(0.3)  # let requests already on the wire land at the provider

        assert main(p.cli("resume")) == 0

        store = Reader(p.db)
        (alert,) = store.alerts()
        counts = store.state_counts(alert.id)
    assert counts == {"sms-residents": {"sent": recipients}}
    per_phone = {phone: len(p.twilio.messages_to(phone)) for phone in p.phones}
    duplicates = {k: v for k, v in per_phone.items() if v > 1}
    missing = [k for k, v in per_phone.items() if v == 0]
    assert not duplicates and not missing, (len(duplicates), len(missing), accepted_at_kill)
    assert len(p.twilio.messages) == recipients
