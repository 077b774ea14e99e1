"""The service's edge: security headers on every response, no versions in Server, /metrics behind a token,
a cap on the event streams one user holds."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import replace

import pytest

from broadcaster.service.headers import SECURITY_HEADERS
from broadcaster.service.paths import public_text
from tests.engine.providers import Providers
from tests.service.support import ROOMY, Api, serving

PATHS = [
    ("/", None),  # the console
    ("/static/app.js", None),
    ("/api/openapi.json", None),
    ("/api/templates", "viewer"),
    ("/api/templates", None),  # 401
    ("/api/nowhere", "viewer"),  # 404
    ("/cap/feed.atom", None),
]


@pytest.mark.parametrize(("path", "user"), PATHS)
async def test_every_response_carries_the_security_headers(api: Api, path: str, user: str | None) -> None:
    """Before, none was sent, and Server named aiohttp's and Python's versions."""
    async with api.client.get(path, headers=api.headers(user)) as response:
        await response.read()
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name, response.status)
        assert "aiohttp" not in response.headers.get("Server", "").lower()
        assert "python" not in response.headers.get("Server", "").lower()


def test_the_policy_allows_no_inline_script_and_no_framing() -> None:
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


async def test_metrics_need_a_token(api: Api) -> None:
    """Before, anyone who could reach the port read node names (host:pid), channel ids and volumes."""
    status, body = await api.get("/metrics", None)
    assert status == 401 and body["error"] == "unauthorized"
    status, raw = await api.get("/metrics", "viewer")
    assert status == 200 and b"broadcaster_" in raw


async def test_one_user_holds_at_most_streams_per_user_event_streams(providers: Providers) -> None:
    """Before, one viewer opened 410 streams, each a task and a queue on the server."""
    async with serving(providers, limits=replace(ROOMY, streams_per_user=2)) as api:
        status, held = await api.fire("officer", template="earthquake", mode="live")
        assert status == 202 and held["state"] == "awaiting_confirmation"  # its stream stays open while it waits
        path = f"/api/alerts/{held['alert_id']}/events"
        async with AsyncExitStack() as streams:
            for _ in range(2):
                response = await streams.enter_async_context(api.client.get(path, headers=api.headers("viewer")))
                assert response.status == 200
                assert (await response.content.readline()).startswith(b"event: progress")
            status, body = await api.get(path, "viewer")
            assert status == 429 and body["error"] == "too_many_streams", body
            other = await streams.enter_async_context(api.client.get(path, headers=api.headers("approver")))
            assert other.status == 200  # the cap is per user
        # Closed streams are given back.
        async with api.client.get(path, headers=api.headers("viewer")) as response:
            assert response.status == 200


def test_a_path_is_shown_relative_to_the_folder_it_was_configured_in() -> None:
    roots = ["/srv/broadcaster", "/srv/broadcaster/templates", "/data/lists"]
    text = "/srv/broadcaster/templates/flood.toml: bad; /data/lists/residents.csv: line 3; in /srv/broadcaster"
    assert public_text(text, roots) == "templates/flood.toml: bad; residents.csv: line 3; in ."
