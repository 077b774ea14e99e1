"""kill -9 mid-fan-out, then resume: every recipient gets exactly one SMS or WhatsApp message.

Email cannot be asked what the server took: after a kill, the emails in flight are
sent again (``on_unknown = "resend"``) as the same message (the same Message-ID),
and only those; every other address gets exactly one.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def kill_mid_fan_out(p: Providers, channel: str, sent: Callable[[], int], recipients: int) -> int:
    """Fire live to ``channel`` in a process, SIGKILL it at a random point, resume; the count at the kill."""
    env = {**os.environ, **SECRETS}
    process = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", *p.cli("fire", "road_closure", "--use-examples", "--live", "--yes",
                                                     "--json", "--channels", channel, as_user="officer")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    kill_after = random.Random().randint(100, 1500)
    deadline = time.monotonic() + 60
    while sent() < kill_after:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the fire never got going"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.stderr is not None
    process.stderr.close()
    at_kill = sent()
    assert at_kill < recipients, "killed too late to test anything"
    time.sleep(0.3)  # let requests already on the wire land at the provider
    assert main(p.cli("resume")) == 0
    return at_kill


def test_kill_9_mid_fan_out_then_resume_gives_exactly_one_whatsapp_message_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    recipients = 2000
    with Providers(tmp_path, recipients=recipients, latency=0.02, sms_rate=400,
                   extra_channels=lambda p: [p.whatsapp_channel()]) as p:
        at_kill = kill_mid_fan_out(p, "whatsapp-residents", lambda: len(p.twilio.messages), recipients)
        (alert,) = Reader(p.db).alerts()
        counts = Reader(p.db).state_counts(alert.id)
    assert counts == {"whatsapp-residents": {"sent": recipients}}
    per_phone = {phone: len(p.twilio.messages_to("whatsapp:" + phone)) for phone in p.phones}
    assert sorted(set(per_phone.values())) == [1], ({k: v for k, v in per_phone.items() if v != 1}, at_kill)
    assert len(p.twilio.messages) == recipients


def test_kill_9_mid_fan_out_then_resume_resends_only_the_emails_in_flight_as_the_same_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    recipients = 2000
    with Providers(tmp_path, recipients=recipients, latency=0.02, sms_rate=400,
                   extra_channels=lambda p: [p.email_channel(connections=16)]) as p:
        at_kill = kill_mid_fan_out(p, "email-residents", lambda: len(p.smtp.messages), recipients)
        store = Reader(p.db)
        (alert,) = store.alerts()
        counts = store.state_counts(alert.id)
        in_flight = {a.recipient for a in store.attempts(alert.id) if a.outcome == "unknown"}
    assert counts == {"email-residents": {"sent": recipients}}
    by_address: dict[str, list[str]] = {}
    for stored in p.smtp.messages:
        by_address.setdefault(stored.rcpt_tos[0], []).append(stored.message["Message-ID"])
    assert sorted(by_address) == sorted(p.emails), "every address got its email"
    twice = {address: ids for address, ids in by_address.items() if len(ids) > 1}
    assert set(twice) <= in_flight, (sorted(twice), sorted(in_flight), at_kill)
    assert all(len(ids) == 2 and len(set(ids)) == 1 for ids in twice.values()), twice
