"""Every test here runs against both backends: SQLite in a temp file, PostgreSQL on the throwaway server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broadcaster.store import Store, open_store, upgrade_database

OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    url: str = request.getfixturevalue("pg_url")
    upgrade_database(url)
    return url


@pytest.fixture
def open_more(database: str) -> Iterator[OpenStore]:
    """Opens further stores on the same database (another node's connection); all closed afterwards."""
    opened: list[Store] = []

    def make() -> Store:
        opened.append(open_store(database))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_more: OpenStore) -> Store:
    return open_more()
