"""Fixtures for the channel tests: a live :class:`Clients` per test, and every logger at DEBUG."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from broadcaster.channels.base import Clients

# The kinds import these on first use; the log check imports them first, so their loggers exist to be set.
SDK_MODULES = ("telegram", "telegram.request", "httpx", "httpcore", "tweepy.asynchronous", "oauthlib.oauth1",
               "twilio.rest", "twilio.http.async_http_client", "aiohttp")


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    """Live transports for one test (the fakes listen on 127.0.0.1), closed at its end."""
    async with Clients(recording=False) as live:
        yield live


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG on every logger, SDK loggers included, each propagating to caplog's handler.

    ``caplog.set_level`` alone sets the root: an SDK may give its own logger a level,
    or stop it propagating, and then its records would never be checked.
    """
    for name in SDK_MODULES:
        importlib.import_module(name)
    caplog.set_level(logging.DEBUG)
    changed: list[tuple[logging.Logger, int, bool]] = []
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            changed.append((logger, logger.level, logger.propagate))
            logger.setLevel(logging.DEBUG)
            logger.propagate = True
    try:
        yield caplog
    finally:
        for logger, level, propagate in changed:
            logger.setLevel(level)
            logger.propagate = propagate
