"""CLI tests: the real command line, in-process, against the loopback fake providers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.providers import SECRETS, Providers


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
