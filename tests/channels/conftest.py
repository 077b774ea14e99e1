"""Fixtures for the channel tests: a live :class:`Clients` per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from broadcaster.channels.base import Clients


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Live transports for one test (the fakes listen on 127.0.0.1), closed at its end."""
    async with Clients(recording=False) as live:
        yield live
