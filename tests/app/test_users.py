"""Users and tokens (``broadcaster.app.users``) on both backends: expiry, remove, role, rotate, and how a
remembered token learns of each within a second, by an injected clock, without paying for scrypt again."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from broadcaster.app import users
from broadcaster.app.users import User, Users
from broadcaster.audit import AuditLog
from broadcaster.errors import InputError
from broadcaster.store import Store, open_store
from broadcaster.store.migrate import available, upgrade
from broadcaster.store.sql import Database
from tests.service.support import ManualClock


@pytest.fixture
def scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every scrypt run (adds, full verifications, unknown-id decoys)."""
    calls: list[int] = []
    real = users._hash

    def counted(secret: str, salt: bytes) -> bytes:
        calls.append(1)
        return real(secret, salt)

    monkeypatch.setattr(users, "_hash", counted)
    return calls


async def test_a_role_change_reaches_a_remembered_token_once_it_is_a_second_old(
    store: Store, scrypt_calls: list[int]
) -> None:
    clock = ManualClock()
    admin = Users(store.db)  # another process: `broadcaster users role`
    token = (await admin.add("fatima", "officer")).reveal()
    server = Users(store.db, clock=clock)
    assert await server.verify(token) == (User("fatima", "officer"), "")
    paid = len(scrypt_calls)
    await admin.set_role("fatima", "viewer", actor="cli:admin")
    clock.advance(0.5)  # remembered, and trusted for up to a second: no read, no scrypt
    assert await server.verify(token) == (User("fatima", "officer"), "")
    clock.advance(0.6)
    assert await server.verify(token) == (User("fatima", "viewer"), "")
    for _ in range(5):  # each recheck reads the row by its id; none pays for scrypt
        clock.advance(2.0)
        assert await server.verify(token) == (User("fatima", "viewer"), "")
    assert len(scrypt_calls) == paid


async def test_a_removed_users_token_is_refused_within_a_second(store: Store) -> None:
    clock = ManualClock()
    admin = Users(store.db)
    token = (await admin.add("fatima", "officer")).reveal()
    server = Users(store.db, clock=clock)
    assert (await server.verify(token))[0] is not None
    removed = await admin.remove("fatima", actor="cli:admin")
    assert (removed.name, removed.role) == ("fatima", "officer")
    clock.advance(1.001)
    assert await server.verify(token) == (None, "token revoked (its user was removed, or the token was rotated)")
    # Forgotten: the next try is a full check, and the row is gone.
    assert await server.verify(token) == (None, "unknown token")
    # A user of the same name, created again, has a token of their own: the old one stays dead.
    again = (await admin.add("fatima", "viewer")).reveal()
    assert await server.verify(token) == (None, "unknown token")
    assert await server.verify(again) == (User("fatima", "viewer"), "")


async def test_rotation_kills_the_old_token_and_the_new_one_works(store: Store) -> None:
    clock = ManualClock()
    admin = Users(store.db)
    old = (await admin.add("fatima", "officer")).reveal()
    server = Users(store.db, clock=clock)
    assert (await server.verify(old))[0] is not None
    new = (await admin.rotate("fatima", actor="cli:admin")).reveal()
    assert new != old and new.startswith("bct_")
    assert await admin.verify(old) == (None, "unknown token")  # dead at once for a fresh check
    clock.advance(1.001)
    assert (await server.verify(old))[0] is None
    assert await server.verify(new) == (User("fatima", "officer"), "")


async def test_an_expired_token_is_refused_with_its_reason(store: Store) -> None:
    clock = ManualClock()
    admin = Users(store.db)
    token = (await admin.add("fatima", "officer", expires_s=60, now=clock.now())).reveal()
    server = Users(store.db, clock=clock)
    assert (await server.verify(token))[0] is not None
    clock.advance(61)
    user, reason = await server.verify(token)  # remembered, but expiry is checked on every use
    assert user is None and reason.startswith("token expired at ") and "users rotate fatima" in reason
    user, reason = await Users(store.db, clock=clock).verify(token)  # a fresh process, after scrypt
    assert user is None and "expired" in reason
    # Rotation issues a token that lives again.
    fresh = (await admin.rotate("fatima", expires_s=3600, now=clock.now())).reveal()
    assert (await server.verify(fresh))[0] == User("fatima", "officer")


async def test_every_change_is_audited_with_its_actor_in_one_chain(store: Store) -> None:
    admin = Users(store.db)
    await admin.add("fatima", "officer", expires_s=86400, now=1_800_000_000.0, actor="cli:root")
    await admin.set_role("fatima", "approver", actor="cli:root")
    await admin.rotate("fatima", expires_s=3600, now=1_800_000_100.0, actor="cli:root")
    await admin.remove("fatima", actor="cli:root")
    log = AuditLog(store.db)
    rows = list(reversed(await log.tail(limit=10)))
    assert [(r.actor, r.action) for r in rows] == [("cli:root", "user_add"), ("cli:root", "user_role"),
                                                   ("cli:root", "user_rotate"), ("cli:root", "user_remove")]
    details = [orjson.loads(r.detail) for r in rows]
    assert details[0] == {"name": "fatima", "role": "officer", "expires_at": "2027-01-16T08:00:00+00:00"}
    assert details[1] == {"name": "fatima", "role": "approver", "previous": "officer"}
    assert details[2] == {"name": "fatima", "expires_at": "2027-01-15T09:01:40+00:00"}
    assert details[3] == {"name": "fatima", "role": "approver"}
    assert (await log.verify()).ok


async def test_changes_to_unknown_users_and_bad_roles_name_what_is_wrong(store: Store) -> None:
    admin = Users(store.db)
    await admin.add("fatima", "officer")
    for change in (admin.remove("nobody"), admin.set_role("nobody", "viewer"), admin.rotate("nobody")):
        with pytest.raises(InputError, match="no user 'nobody'"):
            await change
    with pytest.raises(InputError, match="--role: role 'root': must be one of viewer, operator"):
        await admin.set_role("fatima", "root")
    with pytest.raises(InputError, match="--expires"):
        await admin.add("khalid", "viewer", expires_s=0)
    assert [(a.name, a.role) for a in await admin.all()] == [("fatima", "officer")]
    assert await AuditLog(store.db).tail() == []  # nothing changed, nothing audited


async def test_a_token_is_never_remembered_past_its_users_removal_here(store: Store) -> None:
    """The process that makes a change forgets that user's tokens at once (no second of grace)."""
    admin = Users(store.db, clock=ManualClock())
    token = (await admin.add("fatima", "officer")).reveal()
    assert (await admin.verify(token))[0] is not None
    await admin.set_role("fatima", "viewer")
    assert (await admin.verify(token))[0] == User("fatima", "viewer")
    await admin.remove("fatima")
    assert (await admin.verify(token))[0] is None


async def _at_version_4(database: str, tmp_path: Path) -> Database:
    """A database migrated to version 4 (before token expiry), with one user, as the previous release left it."""
    if database.startswith("postgresql://"):
        from broadcaster.store.postgres_db import PgDatabase

        db: Database = await PgDatabase.connect(database)
        dialect = "postgresql"
    else:
        from broadcaster.store.sqlite_db import SqliteDatabase

        db = await SqliteDatabase.open(str(tmp_path / "v4.db"))
        dialect = "sqlite"
    await db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     " applied_at DOUBLE PRECISION NOT NULL)")
    async with db.transaction() as tx:
        for migration in available(dialect)[:4]:  # type: ignore[arg-type]
            await tx.script(migration.sql)
            await tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                             (migration.version, migration.name, 0.0))
        await tx.execute("INSERT INTO users (name, role, token_id, token_salt, token_hash, created_at)"
                         " VALUES (?,?,?,?,?,?)", ("old-officer", "officer", "0" * 16, b"s" * 16, b"h" * 32, 1.0))
    return db


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_tokens_from_before_expiry_get_90_days_from_the_upgrade(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = request.getfixturevalue("pg_url") if backend == "postgresql" else str(tmp_path / "v4.db")
    db = await _at_version_4(database, tmp_path)
    try:
        before = time.time()
        applied = await upgrade(db)
        after = time.time()
        assert applied and applied[0].version == 5  # and any later migration
        (row,) = (await db.execute("SELECT name, expires_at FROM users")).rows
        assert before + 90 * 86400 - 5 <= row["expires_at"] <= after + 90 * 86400 + 5
    finally:
        await db.close()
    # A row written without an expiry is expired (the column's default is 0): never a token that lives forever.
    store = await open_store(database)
    try:
        await store.db.execute("INSERT INTO users (name, role, token_id, token_salt, token_hash, created_at)"
                               " VALUES (?,?,?,?,?,?)", ("by-hand", "viewer", "1" * 16, b"s" * 16, b"h" * 32, 1.0))
        (row,) = (await store.db.execute("SELECT expires_at FROM users WHERE name = ?", ("by-hand",))).rows
        assert row["expires_at"] == 0
    finally:
        await store.close()
