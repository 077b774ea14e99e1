"""Every response carries the security headers, and the Server header gives away no versions."""

from __future__ import annotations

import pytest

from broadcaster.service.headers import SECURITY_HEADERS
from tests.service.support import Api

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
