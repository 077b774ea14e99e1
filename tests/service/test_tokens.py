"""A running service sees every change to a user within a second: role, removal, rotation, expiry.

Driven by the service's injectable clock where it can be; once against a real ``broadcaster serve`` process
changed by the ``broadcaster users`` commands of another process, polled with a generous deadline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest

from broadcaster.app import users
from broadcaster.app.users import Users
from broadcaster.cli import main
from tests.engine.providers import Providers
from tests.service.support import Api, ManualClock, provider_requests


def clock_of(api: Api) -> ManualClock:
    assert isinstance(api.clock, ManualClock)
    return api.clock


async def test_role_removal_and_rotation_reach_the_running_service_within_a_second(
    clocked: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, clock = clocked, clock_of(clocked)
    admin = Users(api.app.store.db)  # what `broadcaster users …` does, from another process
    scrypt: list[str] = []
    real = users._hash

    def counted(secret: str, salt: bytes) -> bytes:
        scrypt.append(secret)
        return real(secret, salt)

    monkeypatch.setattr(users, "_hash", counted)
    assert await api.get("/api/me", "officer") == (200, {"name": "officer", "role": "officer"})
    assert (await api.get("/api/me", "officer2"))[0] == 200
    assert (await api.get("/api/me", "approver"))[0] == 200

    await admin.set_role("officer", "viewer", actor="cli:admin")
    new = (await admin.rotate("officer2", actor="cli:admin")).reveal()
    await admin.remove("approver", actor="cli:admin")
    clock.advance(1.001)

    assert await api.get("/api/me", "officer") == (200, {"name": "officer", "role": "viewer"})
    status, body = await api.fire("officer", mode="live")
    assert status == 403 and "officer is viewer" in body["message"]
    for user in ("officer2", "approver"):
        status, body = await api.get("/api/me", user)
        assert status == 401 and "token revoked" in body["message"], (user, body)
    assert await api.call("GET", "/api/me", None, headers={"Authorization": f"Bearer {new}"}) == (
        200, {"name": "officer2", "role": "officer"})
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    # The cache keeps its worth: a token pays for scrypt once, however often it is re-read by its id.
    paid = len(scrypt)
    for _ in range(10):
        assert (await api.get("/api/me", "operator"))[0] == 200
        clock.advance(0.7)
    assert len(scrypt) == paid + 1


async def test_an_expired_token_is_refused_with_its_reason(clocked: Api) -> None:
    api, clock = clocked, clock_of(clocked)
    token = (await Users(api.app.store.db).add("shift-officer", "officer", expires_s=3600,
                                               now=clock.now())).reveal()
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.call("GET", "/api/me", None, headers=headers))[0] == 200
    clock.advance(3601)
    status, body = await api.call("GET", "/api/me", None, headers=headers)
    assert status == 401 and "token expired at" in body["message"]
    status, body = await api.call("POST", "/api/alerts", None, {"template": "road_closure", "use_examples": True,
                                                                "mode": "live", "confirm": "road_closure"},
                                  headers=headers)
    assert status == 401
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    await api.service.failed_logins.flush(everything=True)  # failed logins are written a minute at a time
    reasons = {reason[:16] for r in await api.audit("login_failure") for reason in orjson.loads(r.detail)["reasons"]}
    assert reasons == {"token expired at"}


# --- a real `broadcaster serve`, changed by `broadcaster users` in another process -------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def me(port: int, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/me",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
    except OSError:
        return 0, None  # not listening yet


def until(what: str, probe: Callable[[], bool], server: subprocess.Popen[bytes], deadline_s: float = 30.0) -> float:
    """Poll ``probe`` until it holds; the seconds it took. Generous deadline: only a hang fails."""
    start = time.monotonic()
    while not probe():
        assert server.poll() is None, f"broadcaster serve exited with {server.returncode}"
        assert time.monotonic() - start < deadline_s, f"{what}: not within {deadline_s} s"
        time.sleep(0.02)
    return time.monotonic() - start


@contextmanager
def serve(p: Providers) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    log = (p.tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "broadcaster", *p.cli("serve", "--port", str(port))],
                              env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield server, port
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_a_running_broadcaster_serve_sees_users_commands_from_another_process(
    providers: Providers, capsys: pytest.CaptureFixture[str], real_scrypt: None
) -> None:
    p = providers

    def users_cli(*args: str) -> str:
        capsys.readouterr()
        assert main(p.cli("users", *args)) == 0
        return capsys.readouterr().out.strip().splitlines()[-1]

    token = users_cli("add", "fatima", "--role", "officer")
    with serve(p) as (server, port):
        until("the server answers", lambda: me(port, token) == (200, {"name": "fatima", "role": "officer"}), server)
        users_cli("role", "fatima", "viewer")
        took = {"role": until("the new role", lambda: me(port, token)[1] == {"name": "fatima", "role": "viewer"},
                              server)}
        new = users_cli("rotate", "fatima")
        took["rotate"] = until("the old token refused", lambda: me(port, token)[0] == 401, server)
        assert me(port, new) == (200, {"name": "fatima", "role": "viewer"})
        users_cli("remove", "fatima")
        took["remove"] = until("the removed user refused", lambda: me(port, new)[0] == 401, server)
        assert "token revoked" in me(port, new)[1]["message"] or "unknown token" in me(port, new)[1]["message"]
    print(f"serve saw: {', '.join(f'{k} after {v:.2f} s' for k, v in took.items())}")
