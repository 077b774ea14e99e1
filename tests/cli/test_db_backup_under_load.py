"""A backup taken while a live 10,000-SMS fan-out writes, restored after the machine is lost, then resumed:
the audit log verifies, every phone gets exactly one SMS (what went out after the backup is found at Twilio)."""

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
from broadcaster.cli.output import EXIT_OK
from tests.engine.providers import SECRETS, Providers
from tests.support import Reader

pytestmark = pytest.mark.slow
RECIPIENTS = 10_000


def wait_for(p: Providers, process: subprocess.Popen[bytes], count: int) -> None:
    deadline = time.monotonic() + 120  # only a hang reaches it
    while len(p.twilio.messages) < count:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, "the fire never got there"
        time.sleep(0.005)


def test_a_backup_taken_during_a_10k_sms_fan_out_restores_verifies_and_resumes_with_one_sms_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with Providers(tmp_path, recipients=RECIPIENTS, sms_rate=4000) as p:
        process = subprocess.Popen(
            [sys.executable, "-m", "broadcaster", *p.cli("fire", "road_closure", "--use-examples", "--live", "--yes",
                                                         "--json", "--channels", "sms-residents", as_user="officer")],
            env={**os.environ, **SECRETS}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        rng = random.Random()
        wait_for(p, process, rng.randint(4000, 7000))
        backup = tmp_path / "backup.db"
        assert main(p.cli("db", "backup", str(backup))) == EXIT_OK  # while the fire writes
        at_backup = len(p.twilio.messages)
        wait_for(p, process, at_backup + rng.randint(300, 1500))  # more go out after the backup ...
        process.send_signal(signal.SIGKILL)  # ... then the machine and its database are lost
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()
        at_loss = len(p.twilio.messages)
        assert at_backup < at_loss < RECIPIENTS, (at_backup, at_loss)
        time.sleep(0.3)  # let requests already on the wire land at the provider

        restored = tmp_path / "elsewhere" / "broadcaster.db"
        again = ["--config", str(p.config), "--db", str(restored)]
        capsys.readouterr()
        assert main([*again, "db", "restore", str(backup)]) == EXIT_OK
        assert "deliveries were open in the backup" in capsys.readouterr().out
        assert main([*again, "audit", "verify"]) == EXIT_OK
        assert main([*again, "resume"]) == EXIT_OK
        assert main([*again, "audit", "verify"]) == EXIT_OK
        store = Reader(restored)
        (alert,) = store.alerts()
        counts = store.state_counts(alert.id)
        reconciled = sum(1 for a in store.attempts(alert.id) if a.outcome == "reconciled")
    assert counts == {"sms-residents": {"sent": RECIPIENTS}}
    per_phone = {phone: len(p.twilio.messages_to(phone)) for phone in p.phones}
    twice = {k: v for k, v in per_phone.items() if v > 1}
    missing = [k for k, v in per_phone.items() if v == 0]
    assert not twice and not missing, (len(twice), len(missing), at_backup, at_loss)
    assert len(p.twilio.messages) == RECIPIENTS
    assert reconciled >= at_loss - at_backup - 50, (reconciled, at_backup, at_loss)  # found at Twilio, not resent
