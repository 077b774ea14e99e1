"""Suite-wide guards: no test may reach a host other than loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from broadcaster.netguard import no_network


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
