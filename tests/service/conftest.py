"""Fixtures: the fake providers on a background loop, and the service on the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.app import load_app
from broadcaster.service import auth
from broadcaster.service.app import make_app
from broadcaster.service.auth import Users
from broadcaster.service.state import Limits
from broadcaster.store import open_store
from tests.engine.providers import SECRETS, Providers
from tests.service.support import PUBLIC_URL, USERS, Api, ManualClock, rewrite_config

# Tests need generous firing limits; test_ratelimit sets its own.
ROOMY = Limits(fire_rate_per_second=1000.0, fire_burst=1000)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(autouse=True)
def _cheap_scrypt(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real scrypt costs ~40 ms a token; the suite uses a cheap work factor (test_auth checks the real one)."""
    if "real_scrypt" not in request.fixturenames:
        monkeypatch.setattr(auth, "_SCRYPT", {"n": 2**4, "r": 1, "p": 1, "dklen": 32})


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


def add_users(database: str) -> dict[str, str]:
    store = open_store(database)
    try:
        users = Users(store.db)  # type: ignore[attr-defined]
        return {name: users.add(name, role).reveal() for name, role in USERS.items()}
    finally:
        store.close()


async def start_api(p: Providers, database: str | None = None, **options: Any) -> tuple[Api, TestClient[Any, Any]]:
    """The service on ``database`` (default: the providers' SQLite file), with a token per test user."""
    database = database or str(p.db)
    tokens = add_users(database)
    app = load_app(str(p.config), database)
    options.setdefault("limits", ROOMY)
    clock = options.get("clock")
    client: TestClient[Any, Any] = TestClient(TestServer(make_app(app, **options)))
    await client.start_server()
    return Api(client=client, app=app, tokens=tokens, providers=p, clock=clock), client


@pytest.fixture
async def api(providers: Providers) -> AsyncIterator[Api]:
    service_api, client = await start_api(providers)
    try:
        yield service_api
    finally:
        await client.close()
        service_api.app.close()


@pytest.fixture
async def clocked(providers: Providers) -> AsyncIterator[Api]:
    """The service on a manual clock (two-person windows, rate limits)."""
    service_api, client = await start_api(providers, clock=ManualClock())
    try:
        yield service_api
    finally:
        await client.close()
        service_api.app.close()
