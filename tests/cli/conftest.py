"""CLI tests: the real command line, in-process, against the loopback fake providers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.engine.providers import SECRETS, Providers

T = TypeVar("T")
DEADLINE_S = 30.0  # generous: only a hang reaches it, never a measurement


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BROADCASTER_TOKEN", raising=False)


@pytest.fixture
def p(tmp_path: Path) -> Iterator[Providers]:
    with Providers(tmp_path, recipients=3) as providers:
        yield providers


def sent_anything(p: Providers) -> bool:
    return any(fake.requests for fake in (p.x, p.telegram, p.twilio, p.webhook))


class Terminal:
    """A long-running command (``runbook run``, ``schedule run``) in its own process, as in an officer's
    terminal, while the test acts as the other terminals; its output goes to ``NAME.log``."""

    def __init__(self, p: Providers, name: str, *args: str, as_user: str | None = None) -> None:
        self.log_path = p.tmp_path / f"{name}.log"
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "broadcaster", *p.cli(*args, as_user=as_user)],
                                            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **SECRETS})

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, what: str, probe: Callable[[], T | None]) -> T:
        """``probe()`` once it gives something; fails (with this process's output) if it never does or the
        process ends first."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"never saw {what}; exit {self.process.poll()}\n{self.output()}")

    def said(self, text: str) -> str:
        """Its output, once ``text`` is in it."""
        return self.wait_for(repr(text), lambda: out if text in (out := self.output()) else None)

    def exit_code(self) -> int:
        """Wait for the process to end by itself; its exit code."""
        try:
            return self.process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"it never ended\n{self.output()}")

    def stop(self) -> None:
        """SIGTERM (as a service manager stops it), then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
