"""Fixtures: the fake providers on a background loop, and the service on the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.app import users
from tests.engine.providers import SECRETS, Providers
from tests.service.support import PUBLIC_URL, Api, ManualClock, rewrite_config, serving


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def _cheap_scrypt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real scrypt costs ~40 ms a token; the suite uses a cheap work factor (test_auth checks the real one)."""
    if "real_scrypt" not in request.fixturenames:
        monkeypatch.setattr(users, "_SCRYPT", {"n": 2**4, "r": 1, "p": 1, "dklen": 32})


@pytest.fixture
def real_scrypt() -> None:
    """Request this fixture to keep the production scrypt work factor."""


@pytest.fixture
def providers(tmp_path: Path) -> Iterator[Providers]:
    with Providers(tmp_path, recipients=3) as p:
        rewrite_config(p, extra=drill_channels(p), public_url=PUBLIC_URL)
        yield p


def drill_channels(p: Providers) -> list[dict[str, Any]]:
    """One exercise outlet, so that exercise mode has somewhere to go."""
    return [{"id": "partner-drills", "kind": "webhook", "url": p.webhook.base_url + "/drills",
             "secret_env": "PARTNER_HOOK_SECRET", "exercise": True, "rate_per_second": 50}]


@pytest.fixture
async def api(providers: Providers) -> AsyncIterator[Api]:
    async with serving(providers) as service_api:
        yield service_api


@pytest.fixture
async def clocked(providers: Providers) -> AsyncIterator[Api]:
    """The service on a manual clock (two-person windows, rate limits)."""
    async with serving(providers, clock=ManualClock()) as service_api:
        yield service_api
