"""cap_push through the whole pipeline: a live alert, its update and its cancel reach the national platform as
signed CAP (verified there against the authority's certificate), each referencing its thread; a retry after a
5xx is the same document."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broadcaster.cli import main
from tests.cap.keys import write_pair
from tests.engine.providers import SECRETS, Providers
from tests.engine.test_lifecycle import fire_json
from tests.fakes.cap_platform import FakeCapPlatform, cap_error
from tests.support import Reader

DUBAI = ZoneInfo("Asia/Dubai")
TOKEN = "cap-LIFECYCLE-TOKEN-do-not-leak"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**SECRETS, "CAP_PLATFORM_TOKEN": TOKEN}.items():
        monkeypatch.setenv(name, value)


def with_cap_push(p: Providers, platform: FakeCapPlatform, key: Path, cert: Path) -> None:
    """The providers' channels.toml, signing with ``key`` and pushing to ``platform``."""
    text = p.config.read_text(encoding="utf-8").replace(
        "[broadcaster]\n", f'[broadcaster]\ncap_signing_key = "{key}"\ncap_signing_cert = "{cert}"\n', 1)
    text += (f'\n[[channel]]\nid = "cap-national"\nkind = "cap_push"\nurl = "{platform.base_url}/api/v1/alerts"\n'
             'auth = "bearer"\ntoken_env = "CAP_PLATFORM_TOKEN"\nstatus_field = "status"\nack = "accepted"\n'
             "rate_per_second = 50\n")
    p.config.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_an_alert_its_update_and_cancel_are_pushed_signed_with_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key_type: str
) -> None:
    key, cert = write_pair(tmp_path / "keys", key_type)
    platform = FakeCapPlatform(cert.read_bytes(), token=TOKEN)
    with Providers(tmp_path, recipients=1) as p:
        p.call(platform.start())
        try:
            with_cap_push(p, platform, key, cert)
            platform.script(cap_error(503, retry_after=0))  # the first push is retried
            original = fire_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--live", "--yes",
                                               "--json", "--channels", "cap-national", as_user="officer"))
            ends = (datetime.now(DUBAI) + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
            update = fire_json(capsys, p.cli("update", str(original["alert_id"]), "--var",
                                             f"ends={ends.isoformat()}", "--live", "--yes", "--json",
                                             as_user="officer"))
            cancel = fire_json(capsys, p.cli("cancel", str(update["alert_id"]), "--live", "--yes", "--json",
                                             as_user="officer"))
        finally:
            p.call(platform.stop())
    assert platform.refused == []  # every push verified against the authority's certificate
    pushes = platform.accepted
    assert [push.msg_type for push in pushes] == ["Alert", "Update", "Cancel"]
    ids = [f"alerts.example.gov/{a['alert_id']}" for a in (original, update, cancel)]
    assert [push.identifier for push in pushes] == ids
    assert pushes[0].references is None
    assert ids[0] in (pushes[1].references or "")
    assert ids[0] in (pushes[2].references or "") and ids[1] in (pushes[2].references or "")
    assert platform.pushes == [ids[0], ids[0], ids[1], ids[2]]  # the 503, then the retry of the same document
    assert all(push.signer == "CN=Test authority CAP signer" for push in pushes)


def test_kill_9_while_a_push_is_in_flight_then_resume_leaves_the_platform_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The platform took the document, the reply never came (the fire was killed): resume resends the same signed
    bytes, which the platform holds once by their CAP identifier, and the delivery ends sent."""
    key, cert = write_pair(tmp_path / "keys", "ec")
    platform = FakeCapPlatform(cert.read_bytes(), token=TOKEN)
    with Providers(tmp_path, recipients=1) as p:
        p.call(platform.start())
        try:
            with_cap_push(p, platform, key, cert)
            platform.script(cap_error(200, hang=60, accept=True, body={"status": "accepted"}))
            process = subprocess.Popen(
                [sys.executable, "-m", "broadcaster", *p.cli("fire", "road_closure", "--use-examples", "--live",
                                                             "--yes", "--json", "--channels", "cap-national",
                                                             as_user="officer")],
                env={**os.environ, **SECRETS, "CAP_PLATFORM_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while not platform.pushes:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the fire never pushed"
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert process.stderr is not None
            process.stderr.close()
            assert main(p.cli("resume")) == 0
            store = Reader(p.db)
            (alert,) = store.alerts()
            counts = store.state_counts(alert.id)
        finally:
            p.call(platform.stop())
    assert counts == {"cap-national": {"sent": 1}}
    identifier = f"alerts.example.gov/{alert.id}"
    assert platform.pushes == [identifier, identifier]  # in flight at the kill, then resent once by resume
    assert [push.identifier for push in platform.accepted] == [identifier]
    assert platform.accepted[0].body == alert.cap.encode()  # type: ignore[union-attr]
