"""Migrations on both backends, the PostgreSQL URL rules, and the node commands."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

from broadcaster.cli import main
from broadcaster.errors import ConfigError
from broadcaster.store import Store, open_store, opened, upgrade_database
from broadcaster.store.migrate import available, current, latest, upgrade
from broadcaster.store.sql import numbered
from broadcaster.store.urls import redact
from tests.support import read


def test_migrations_are_numbered_alike_on_both_backends() -> None:
    sqlite, postgres = available("sqlite"), available("postgresql")
    # No gaps: a database is upgraded from its highest applied number, so a missing one would never be applied.
    assert [m.version for m in sqlite] == [m.version for m in postgres] == list(range(1, len(sqlite) + 1))
    assert [m.name for m in sqlite] == [m.name for m in postgres]


def test_db_upgrade_then_status_on_postgresql(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"schema is at version 0, this broadcaster needs \d+: run `broadcaster db"):
        asyncio.run(open_store(pg_url))
    assert main(["--db", pg_url, "db", "status"]) == 1
    assert main(["--db", pg_url, "db", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert "applied 0001 initial" in out and f"schema at version {latest('postgresql')}" in out
    assert main(["--db", pg_url, "db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["--db", pg_url, "db", "status"]) == 0
    assert read(pg_url, lambda store: current(store.db)) == latest("postgresql")


async def test_an_older_sqlite_file_is_brought_up_to_date_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a database as the first release left it
        conn.executescript(available("sqlite")[0].sql)
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     " applied_at DOUBLE PRECISION NOT NULL)")
        conn.execute("INSERT INTO schema_migrations VALUES (1, 'initial', 0)")
    async with opened(str(path)) as store:
        assert await current(store.db) == latest("sqlite")
        assert await upgrade(store.db) == []
        assert await store.nodes.recent(60) == []


async def test_a_schema_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await (await open_store(str(path))).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    with pytest.raises(ConfigError, match="newer than this broadcaster"):
        await open_store(str(path))


async def test_a_postgresql_url_never_carries_a_password() -> None:
    with pytest.raises(ConfigError, match="must not contain a password: set PGPASSWORD") as caught:
        await open_store("postgresql://officer:s3cret-pass@db.example:5432/alerts")
    assert "s3cret-pass" not in str(caught.value)
    assert redact("postgresql://officer@db.example:5432/alerts") == "postgresql://officer@db.example:5432/alerts"


def test_placeholders_are_numbered_outside_string_literals() -> None:
    assert numbered("SELECT '?', x FROM t WHERE a = ? AND b IN (?, ?) AND c = 'it''s ?'") == \
        "SELECT '?', x FROM t WHERE a = $1 AND b IN ($2, $3) AND c = 'it''s ?'"


def test_users_and_the_audit_chain_work_on_postgresql(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", pg_url, "db", "upgrade"]) == 0
    assert main(["--db", pg_url, "users", "add", "fatima", "--role", "officer"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("bct_")
    assert main(["--db", pg_url, "users", "add", "fatima", "--role", "viewer"]) == 2  # already exists
    assert main(["--db", pg_url, "audit", "verify"]) == 0
    assert "audit log OK: 1 row(s)" in capsys.readouterr().out

    async def tamper(store: Store) -> None:
        await store.db.execute("UPDATE audit SET actor = 'someone else'")

    with pytest.raises(Exception, match="append-only"):
        read(pg_url, tamper)


def test_nodes_lists_nodes_leases_and_queues(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", pg_url, "db", "upgrade"]) == 0
    read(pg_url, lambda store: store.nodes.register("host-a:41:beef", "worker"))
    capsys.readouterr()
    assert main(["--db", pg_url, "nodes", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"id":"host-a:41:beef"' in out and '"role":"worker"' in out and '"queues":{}' in out


def test_a_dry_run_on_postgresql_connects_to_nothing_but_its_database(
    pg_url: str, connects: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--db", pg_url, "db", "upgrade"]) == 0
    connects.clear()
    assert main(["--db", pg_url, "fire", "road_closure", "--use-examples", "--dry-run", "--json"]) == 0
    port = urlsplit(pg_url).port
    assert set(connects) == {("127.0.0.1", port)}  # the store's connections, and nothing else
    report = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["mode"] == "dry-run" and {d["state"] for d in report["deliveries"]} == {"sent"}
    assert main(["--db", pg_url, "fire", "road_closure", "--use-examples", "--dry-run", "--queue"]) == 2
    assert "a dry-run is never left to workers" in capsys.readouterr().err


def test_a_cancel_on_postgresql_reaches_the_original_recipients(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A follow-up's deliveries are read from the store while its own alert is being committed."""
    asyncio.run(upgrade_database(pg_url))
    assert main(["--db", pg_url, "fire", "road_closure", "--use-examples", "--dry-run", "--json"]) == 0
    original = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])["alert_id"]
    assert main(["--db", pg_url, "cancel", original, "--dry-run", "--json"]) == 0

    async def phones(store: Store) -> tuple[set[str | None], set[str | None]]:
        (cancel,) = [a for a in await store.alerts.recent() if a.references == original]
        return ({d.recipient for d in await store.alerts.deliveries(original) if d.recipient},
                {d.recipient for d in await store.alerts.deliveries(cancel.id) if d.recipient})

    sent, corrected = read(pg_url, phones)
    assert sent and corrected == sent
