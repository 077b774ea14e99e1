"""Every test here runs against both backends: SQLite in a temp file, PostgreSQL on the throwaway server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from broadcaster.store import Store, open_store, upgrade_database

OpenStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    url: str = request.getfixturevalue("pg_url")
    await upgrade_database(url)
    return url


@pytest.fixture
async def open_more(database: str) -> AsyncIterator[OpenStore]:
    """Opens further stores on the same database (another node's connection); all closed afterwards."""
    opened: list[Store] = []

    async def make() -> Store:
        opened.append(await open_store(database))
        return opened[-1]

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_more: OpenStore) -> Store:
    return await open_more()
