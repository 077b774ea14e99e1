"""A running service against the loopback fakes, with one user per role."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from broadcaster.app.context import App, load
from broadcaster.app.users import Users
from broadcaster.audit import AuditRow
from broadcaster.clock import Clock
from broadcaster.service.app import make_app
from broadcaster.service.state import SERVICE, Limits, Service
from broadcaster.store import Store, open_store
from tests.engine.providers import REPO, Providers
from tests.support import write_config

PUBLIC_URL = "https://alerts.example.gov/broadcaster"
USERS = {"viewer": "viewer", "operator": "operator", "officer": "officer", "officer2": "officer",
         "approver": "approver"}
# Tests need generous firing limits; the rate-limit tests set their own.
ROOMY = Limits(fire_rate_per_second=1000.0, fire_burst=1000)


QUAKE_CONFIRM: dict[str, str] = {"confirm": "earthquake"}  # a live release is typed: the template id


class ManualClock(Clock):
    """Wall and monotonic time that move only when a test says so.

    It starts at the real time: alerts planned on it are due for the dispatcher,
    which keeps the real clock. A test that advances it before planning waits that
    long in real time for the deliveries to fall due: advance by a second where only
    the order of ``sent`` matters.
    """

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self.t = time.time() if start is None else start

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def rewrite_config(p: Providers, *, extra: list[dict[str, Any]] | None = None, templates: Path | None = None,
                   **top: Any) -> None:
    """channels.toml for the fakes again, with extra [broadcaster] keys (e.g. public_url)."""
    channels = p.default_channels() + (extra or [])
    write_config(p.tmp_path, channels, templates=str(templates or REPO / "templates"),
                 database="var/broadcaster.db", **top)


def without_verify_line(p: Providers) -> Path:
    """A copy of the shipped templates without their verification line, approved again as they are now: for a
    config without public_url, which refuses templates that carry the line."""
    from datetime import UTC, datetime

    from tests.templates.support import approve_as_is

    folder = p.tmp_path / "templates-no-verify-line"
    shutil.copytree(REPO / "templates", folder)
    for path in sorted(folder.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        if path.stem != "gazetteer" and "\nverify_line = true" in text:
            path.write_text(re.sub(r"\nverify_line = true[^\n]*", "", text), encoding="utf-8")
            approve_as_is(path, "duty-officer", datetime.now(UTC))
    return folder


@dataclass
class Api:
    """A test client plus a token per user name."""

    client: TestClient[Any, Any]
    app: App
    tokens: dict[str, str]
    providers: Providers
    clock: Clock | None = None
    responses: list[Any] = field(default_factory=list)

    @property
    def service(self) -> Service:
        return self.client.app[SERVICE]  # type: ignore[index]

    def headers(self, user: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}

    async def call(self, method: str, path: str, user: str | None = "viewer", body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": {**self.headers(user), **(headers or {})}}
        if body is not None:
            kwargs["data"] = orjson.dumps(body)
            kwargs["headers"]["Content-Type"] = "application/json"
        async with self.client.request(method, path, **kwargs) as response:
            raw = await response.read()
            ctype = response.headers.get("Content-Type", "")
            return response.status, orjson.loads(raw) if raw and "json" in ctype else raw

    async def audit(self, action: str | None = None, limit: int = 200) -> list[AuditRow]:
        """The newest audit rows first (of one action, when given)."""
        return await self.service.audit.tail(action, limit=limit)

    async def get(self, path: str, user: str | None = "viewer") -> tuple[int, Any]:
        return await self.call("GET", path, user)

    async def post(self, path: str, body: Any = None, user: str | None = "officer") -> tuple[int, Any]:
        return await self.call("POST", path, user, body if body is not None else {})

    async def fire(self, user: str = "officer", **body: Any) -> tuple[int, Any]:
        body.setdefault("template", "road_closure")
        body.setdefault("use_examples", True)
        body.setdefault("mode", "dry-run")
        if body["mode"] == "live":
            body.setdefault("confirm", body["template"])
        return await self.post("/api/alerts", body, user)

    async def settle(self) -> None:
        """Wait until every delivery the service started has finished."""
        while self.service.runs.active:
            await asyncio.wait(set(self.service.runs.active))
        await asyncio.sleep(0)  # let done-callbacks run

    async def events(self, alert_id: str, user: str = "viewer",
                     after_first: Callable[[], Awaitable[Any]] | None = None) -> list[tuple[str, Any]]:
        """Read the alert's event stream to its end; ``after_first`` runs once the first event is in."""
        found: list[tuple[str, Any]] = []
        async with self.client.get(f"/api/alerts/{alert_id}/events", headers=self.headers(user)) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("text/event-stream")
            name = None
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: ") and name:
                    found.append((name, orjson.loads(line[len("data: "):])))
                    name = None
                    if after_first is not None and len(found) == 1:
                        await after_first()
        return found


async def add_users(store: Store) -> dict[str, str]:
    """One user per entry of USERS; their tokens by name."""
    users = Users(store.db)
    return {name: (await users.add(name, role)).reveal() for name, role in USERS.items()}


@contextlib.asynccontextmanager
async def serving(p: Providers, database: str | None = None, **options: Any) -> AsyncIterator[Api]:
    """The service on ``database`` (default: the providers' SQLite file), with a token per test user.

    The store is opened on the test's own loop and closed after the server stops.
    """
    database = database or str(p.db)
    config, catalogue, database = load(str(p.config), database)
    store = await open_store(database)
    try:
        tokens = await add_users(store)
        app = App(config=config, catalogue=catalogue, store=store, database=database)
        options.setdefault("limits", ROOMY)
        client: TestClient[Any, Any] = TestClient(TestServer(make_app(app, **options)))
        await client.start_server()
        try:
            yield Api(client=client, app=app, tokens=tokens, providers=p, clock=options.get("clock"))
        finally:
            await client.close()
    finally:
        await store.close()


def provider_requests(p: Providers) -> list[int]:
    return [len(f.requests) for f in (p.x, p.telegram, p.twilio, p.webhook)]


def only(items: list[Any], predicate: Callable[[Any], bool]) -> Any:
    (found,) = [i for i in items if predicate(i)]
    return found
