"""Application-layer tests on both backends: SQLite in a temp file, PostgreSQL on the throwaway server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.app import users
from broadcaster.store import Store, open_store, upgrade_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite path or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "app.db")
    url: str = request.getfixturevalue("pg_url")
    await upgrade_database(url)
    return url


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    opened = await open_store(database)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(autouse=True)
def _cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real scrypt costs ~40 ms a token; these tests check what happens around it, not its cost."""
    monkeypatch.setattr(users, "_SCRYPT", {"n": 2**4, "r": 1, "p": 1, "dklen": 32})
