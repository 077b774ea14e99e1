"""Suite-wide guards: no test may reach a host other than loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broadcaster.netguard import no_network


@pytest.fixture(autouse=True)
def _loopback_only() -> Iterator[list[str]]:
    """Fail any test that connects, sends to or resolves a non-loopback host."""
    with no_network(allow_loopback=True) as refused:
        yield refused
    assert not refused, f"test tried to reach the network: {refused}"
