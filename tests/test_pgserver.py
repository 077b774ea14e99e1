"""The throwaway PostgreSQL server behind the ``pg_server`` and ``pg_url`` fixtures."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.pgserver import PgServer


def _listeners(port: int) -> list[str] | None:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``.

    None where there is no /proc/net/tcp to read.
    """
    if not Path("/proc/net/tcp").exists():
        return None
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hexport = fields[1].split(":")
            if fields[3] == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                found.append(address)
    return found


async def test_pg_url_is_a_fresh_postgresql_database_on_loopback(pg_url: str, pg_server: PgServer) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        assert "PostgreSQL" in await conn.fetchval("SELECT version()")
        assert await conn.fetchval("SELECT current_database()") == pg_url.rsplit("/", 1)[1]
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert str(await conn.fetchval("SELECT inet_server_addr()")) == "127.0.0.1"
    finally:
        await conn.close()
    listeners = _listeners(pg_server.port)
    if listeners is None:
        pytest.skip("no /proc/net/tcp to list the listening sockets")
    assert listeners == ["0100007F"]  # 127.0.0.1 only: no 0.0.0.0, no IPv6


async def test_each_database_is_separate(pg_url: str, pg_server: PgServer) -> None:
    other = pg_server.create_database()
    assert other != pg_url
    try:
        first = await asyncpg.connect(pg_url)
        second = await asyncpg.connect(other)
        try:
            await first.execute("CREATE TABLE only_here (id int)")
            assert await first.fetchval("SELECT to_regclass('only_here') IS NOT NULL")
            assert await second.fetchval("SELECT to_regclass('only_here') IS NULL")
        finally:
            await first.close()
            await second.close()
    finally:
        pg_server.drop_database(other.rsplit("/", 1)[1])


@pytest.mark.slow
def test_stop_ends_the_server_and_removes_its_directory(pg_server: PgServer) -> None:
    server = PgServer(pg_server.bindir).start()  # a second server, not the session's
    datadir = server.datadir
    assert (datadir / "postmaster.pid").exists()
    assert server.running
    server.stop()
    assert not server.running
    assert not datadir.parent.exists()
    server.stop()  # a second stop (fixture teardown, then atexit) is harmless
