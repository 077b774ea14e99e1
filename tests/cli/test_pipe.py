"""A reader that goes away (``| head``) never stops a command half-way, nor prints a traceback."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broadcaster.cli.pipe import QuietStdout
from tests.engine.providers import SECRETS, Providers
from tests.support import Reader

pytestmark = pytest.mark.slow


def test_a_live_fire_whose_output_pipe_is_closed_still_reaches_every_recipient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the first print after the reader left raised BrokenPipeError: the fire stopped with a traceback."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with Providers(tmp_path, recipients=50) as p:
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first line
        process = subprocess.run(
            [sys.executable, "-m", "broadcaster", *p.cli("fire", "road_closure", "--use-examples", "--live", "--yes",
                                                         "--log", as_user="officer")],
            env={**os.environ, **SECRETS}, stdout=write_end, stderr=subprocess.PIPE, timeout=120, check=False,
        )
        os.close(write_end)
        assert "Traceback" not in process.stderr.decode(), process.stderr.decode()
        assert process.returncode == 0, process.stderr.decode()
        (alert,) = Reader(p.db).alerts()
        counts = Reader(p.db).state_counts(alert.id)
        assert counts["sms-residents"] == {"sent": 50}, counts
        assert len(p.twilio.messages) == 50


def test_a_broken_pipe_drops_the_rest_of_the_output_and_raises_nothing() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    out = QuietStdout(Closed())
    assert out.write("first line\n") == len("first line\n")
    assert out.broken
    out.write("second line\n")
    out.flush()
