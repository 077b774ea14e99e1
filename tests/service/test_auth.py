"""Bearer tokens and roles: 401 without a valid token, 403 for each action a role may not take."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import aiohttp
import orjson
import pytest

from broadcaster.app.users import Users
from broadcaster.audit import AuditLog
from broadcaster.cli import main
from broadcaster.store import opened
from broadcaster.store.sqlite_db import SqliteDatabase
from broadcaster.timefmt import iso
from tests.engine.providers import REPO, SECRET_VALUES, Providers
from tests.service.conftest import drill_channels
from tests.service.support import (
    QUAKE_CONFIRM,
    Api,
    ManualClock,
    provider_requests,
    rewrite_config,
    serving,
)

READS = ["/api/me", "/api/templates", "/api/templates/road_closure", "/api/gazetteer", "/api/channels",
         "/api/alerts"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"},
     {"Authorization": "Bearer not-a-token"},
     {"Authorization": "Bearer bct_0123456789abcdef_" + "a" * 64}],
    ids=["none", "empty", "basic", "malformed", "unknown"],
)
async def test_every_api_path_needs_a_valid_bearer_token(api: Api, headers: dict[str, str]) -> None:
    paths = [("GET", p) for p in READS] + [
        ("POST", "/api/alerts"), ("POST", "/api/preview"), ("POST", "/api/alerts/x/confirm"),
        ("POST", "/api/alerts/x/cancel"), ("POST", "/api/templates/road_closure/approve"),
        ("GET", "/api/alerts/x/events"), ("GET", "/api/nowhere"),
    ]
    for method, path in paths:
        status, body = await api.call(method, path, None, {"template": "road_closure", "mode": "live"}
                                      if method == "POST" else None, headers=headers)
        assert status == 401, (method, path, body)
        assert body["error"] == "unauthorized"
    assert provider_requests(api.providers) == [0, 0, 0, 0]
    assert await api.audit("login_failure") == []  # counted, written once the minute is over
    await api.service.failed_logins.flush(everything=True)
    (failure,) = await api.audit("login_failure", limit=100)
    # The audit row says how many, why and where, and the public id of a well-formed token; never the token.
    detail = orjson.loads(failure.detail)
    assert detail["count"] == len(paths) and detail["source"] == "127.0.0.1"
    assert sum(detail["paths"].values()) == len(paths) and len(detail["reasons"]) == 1
    assert "a" * 64 not in failure.detail and "not-a-token" not in failure.detail
    if headers.get("Authorization", "").startswith("Bearer bct_"):
        assert detail["token_ids"] == ["0123456789abcdef"]


async def test_sixteen_clients_with_bad_tokens_leave_one_row_per_source_per_minute(providers: Providers) -> None:
    """16 clients (each from its own loopback address) refused for three minutes, while the minute before is
    being written: one row per source and minute, each with its exact count, and nothing else."""
    clock = ManualClock(start=1_800_000_000.0)  # a minute boundary
    per_minute, minutes = 24, 3
    sources = [f"127.0.0.{n}" for n in range(2, 18)]
    async with serving(providers, clock=clock) as api:
        url = api.client.make_url("/api/alerts")
        sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0), force_close=True))
                    for source in sources]

        async def refused(index: int, session: aiohttp.ClientSession) -> None:
            for k in range(per_minute):
                bad = {"Authorization": f"Bearer bct_{index:016x}_{'a' * 64}"} if k % 3 else {}
                async with session.get(url, headers=bad) as response:
                    assert response.status == 401

        try:
            for _minute in range(minutes):
                writing = asyncio.create_task(api.service.failed_logins.flush())  # the minute that just ended
                await asyncio.gather(*(refused(i, s) for i, s in enumerate(sessions)), writing)
                clock.advance(60)
        finally:
            for session in sessions:
                await session.close()
    async with opened(str(providers.db)) as store:  # the last minute was written as the server stopped
        rows = [orjson.loads(r.detail) async for r in AuditLog(store.db).rows() if r.action == "login_failure"]
    assert sorted((d["source"], d["minute"]) for d in rows) == sorted(
        (source, iso(1_800_000_000.0 + 60 * m)) for source in sources for m in range(minutes))
    assert {d["count"] for d in rows} == {per_minute}
    assert all(d["reasons"] == {"no bearer token": 8, "unknown token": 16} for d in rows)
    assert all(d["paths"] == {"GET /api/alerts": per_minute} and len(d["token_ids"]) == 1 for d in rows)


async def test_a_wrong_secret_for_a_real_token_id_is_refused(api: Api) -> None:
    good = api.tokens["officer"]
    forged = good[:-4] + ("aaaa" if not good.endswith("aaaa") else "bbbb")
    status, body = await api.call("GET", "/api/me", None, headers={"Authorization": f"Bearer {forged}"})
    assert status == 401
    assert "wrong token secret" in body["message"]


async def test_every_role_reads(api: Api) -> None:
    for user in ("viewer", "operator", "officer", "approver"):
        for path in READS:
            status, body = await api.get(path, user)
            assert status == 200, (user, path, body)
        status, body = await api.post("/api/preview", {"template": "road_closure", "use_examples": True}, user)
        assert status == 200, (user, body)
    status, me = await api.get("/api/me", "operator")
    assert me == {"name": "operator", "role": "operator"}


async def test_what_each_role_may_fire_update_cancel_and_confirm(api: Api) -> None:
    # An alert of each mode to follow up; fired by the approver so the officer may confirm its live two-person fire.
    originals = {}
    for mode in ("dry-run", "exercise", "live"):
        status, body = await api.fire("approver", mode=mode)
        assert status == 202, body
        originals[mode] = body["alert_id"]
    status, quake = await api.fire("approver", template="earthquake", mode="live")
    assert quake["state"] == "awaiting_confirmation"
    await api.settle()

    async def attempt(user: str, action: str, mode: str) -> int:
        confirm = {"confirm": "cancel"} if mode == "live" else {}
        if action == "fire":
            status, _ = await api.fire(user, mode=mode)
        elif action == "update":
            status, _ = await api.post(f"/api/alerts/{originals[mode]}/update",
                                       {"mode": mode, "variables": {"reason": "flooding"},
                                        **({"confirm": "road_closure"} if mode == "live" else {})}, user)
        else:
            status, _ = await api.post(f"/api/alerts/{originals[mode]}/cancel", {"mode": mode, **confirm}, user)
        return status

    table = {}
    for user in ("viewer", "operator", "officer", "approver"):
        for action in ("fire", "update", "cancel"):
            for mode in ("dry-run", "exercise", "live"):
                table[(user, action, mode)] = await attempt(user, action, mode)
        await api.settle()
    expected = {
        (user, action, mode): 202 if user in ("officer", "approver") or (user == "operator" and mode != "live")
        else 403
        for (user, action, mode) in table
    }
    assert table == expected

    # Confirming a two-person fire: officer or approver only.
    for user in ("viewer", "operator"):
        status, body = await api.post(f"/api/alerts/{quake['alert_id']}/confirm", QUAKE_CONFIRM, user)
        assert status == 403, body
    forbidden = await api.audit("forbidden", limit=200)
    assert {orjson.loads(r.detail)["role"] for r in forbidden} == {"viewer", "operator"}


async def test_only_an_approver_approves_a_template_and_only_what_they_reviewed(providers: Providers) -> None:
    templates = providers.tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    # The sample's public_url: the shipped road closure's verification line fits its SMS under it (a longer
    # one, like PUBLIC_URL's path, would need a shorter text: templates check says so, and approving refuses).
    rewrite_config(providers, extra=drill_channels(providers), templates=templates,
                   public_url="https://alerts.example.gov")
    path = templates / "road_closure.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("version = 1", "version = 2", 1), encoding="utf-8")
    async with serving(providers) as api:
        status, shown = await api.get("/api/templates/road_closure")
        assert shown["approved"] is False
        for user in ("viewer", "operator", "officer"):
            status, body = await api.post("/api/templates/road_closure/approve", {"sha256": shown["sha256"]}, user)
            assert status == 403, (user, body)
        status, body = await api.post("/api/templates/road_closure/approve", {"sha256": "0" * 64}, "approver")
        assert status == 409 and "changed since you reviewed it" in body["message"]
        status, body = await api.post("/api/templates/road_closure/approve", {}, "approver")
        assert status == 400 and body["field"] == "sha256"
        status, body = await api.post("/api/templates/road_closure/approve", {"sha256": shown["sha256"]},
                                      "approver")
        assert status == 200, body
        assert body["by"] == "approver" and body["sha256"] == shown["sha256"]
        status, shown = await api.get("/api/templates/road_closure")
        assert shown["approved"] is True and shown["approval"]["by"] == "approver"
        (row,) = await api.audit("approval")
        assert orjson.loads(row.detail) == {"template": "road_closure", "sha256": shown["sha256"]}
        assert row.actor == "approver"


async def test_tokens_are_stored_only_as_a_salted_scrypt_hash(tmp_path: Path, real_scrypt: None) -> None:
    async with opened(str(tmp_path / "t.db")) as store:
        users = Users(store.db)
        token = await users.add("fatima", "officer")
        assert "********" in repr(token) and token.reveal() not in repr(token) and token.reveal() not in str(token)
        secret = token.reveal().rsplit("_", 1)[1]
        assert isinstance(store.db, SqliteDatabase)
        dump = "\n".join(store.db.conn.iterdump())
        assert secret not in dump
        (row,) = (await store.db.execute("SELECT token_salt, token_hash FROM users")).rows
        assert len(row["token_salt"]) == 16 and len(row["token_hash"]) == 32
        user, _ = await Users(store.db).verify(token.reveal())
        assert user is not None and (user.name, user.role) == ("fatima", "officer")
        with pytest.raises(Exception, match="already exists"):
            await users.add("fatima", "viewer")


def test_users_add_prints_the_token_once_as_its_last_line(
    providers: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(providers.cli("users", "add", "khalid", "--role", "approver"))
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    token = out[-1]
    assert token.startswith("bct_") and token not in "\n".join(out[:-1])

    async def check() -> None:
        async with opened(str(providers.db)) as store:
            user, _ = await Users(store.db).verify(token)
            assert user is not None and user.role == "approver"
            rows = (await store.db.execute("SELECT actor, action, detail FROM audit ORDER BY seq")).rows
            assert rows[-1]["action"] == "user_add"
            detail = orjson.loads(rows[-1]["detail"])
            assert (detail["name"], detail["role"]) == ("khalid", "approver") and "expires_at" in detail

    asyncio.run(check())
    assert main(providers.cli("users", "add", "khalid", "--role", "viewer")) == 2
    assert main(providers.cli("users", "add", "bad name", "--role", "viewer")) == 2
    with pytest.raises(SystemExit):
        main(providers.cli("users", "add", "x", "--role", "root"))


async def test_the_users_table_has_no_token_column(tmp_path: Path) -> None:
    async with opened(str(tmp_path / "t.db")) as store:
        columns = [r["name"] for r in await store.db.execute("PRAGMA table_info(users)")]
        assert isinstance(store.db, SqliteDatabase)
    assert columns == ["name", "role", "token_id", "token_salt", "token_hash", "created_at", "expires_at"]


async def test_no_token_or_provider_secret_reaches_a_log_the_audit_or_an_answer(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    answers = []
    for user in api.tokens:
        answers.append(await api.get("/api/me", user))
    bad = api.tokens["officer"][:-3] + ("000" if not api.tokens["officer"].endswith("000") else "111")
    answers.append(await api.call("GET", "/api/alerts", None, headers={"Authorization": f"Bearer {bad}"}))
    answers.append(await api.fire("officer", mode="live"))
    await api.settle()
    answers.append(await api.get(f"/api/alerts/{answers[-1][1]['alert_id']}"))
    answers.append(await api.get("/api/channels"))
    answers.append(await api.get("/metrics"))
    audit = "\n".join([r.detail + r.actor async for r in api.service.audit.rows()])
    everything = caplog.text + repr([r.__dict__ for r in caplog.records]) + audit + repr(answers)
    for token in [*api.tokens.values(), bad]:
        assert token.rsplit("_", 1)[1] not in everything
    for secret in SECRET_VALUES:
        assert secret not in everything
