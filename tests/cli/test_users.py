"""``broadcaster users add | list | remove | role | rotate``: local administration, no token needed, every change
audited, tokens shown once and expiring."""

from __future__ import annotations

import getpass

import orjson
import pytest

from broadcaster.app.users import User, Users
from broadcaster.audit import AuditLog, AuditRow
from broadcaster.cli import main
from tests.engine.providers import Providers
from tests.service.support import rewrite_config
from tests.support import read


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def users(p: Providers, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run(capsys, *p.cli("users", *args))


def verify(p: Providers, token: str) -> tuple[User | None, str]:
    return read(str(p.db), lambda s: Users(s.db).verify(token))


def audit(p: Providers) -> list[AuditRow]:
    return list(reversed(read(str(p.db), lambda s: AuditLog(s.db).tail(limit=50))))


def listing(p: Providers, capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    code, out, err = users(p, capsys, "list", "--json")
    assert code == 0, err
    rows: list[dict[str, object]] = orjson.loads(out)
    return rows


def test_add_role_rotate_remove_each_take_effect_and_are_audited(
    p: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = users(p, capsys, "add", "fatima", "--role", "officer")
    assert code == 0, err
    token = out.strip().splitlines()[-1]
    assert verify(p, token) == (User("fatima", "officer"), "")

    code, out, err = users(p, capsys, "role", "fatima", "approver")
    assert code == 0 and "officer -> approver" in out, err
    assert verify(p, token) == (User("fatima", "approver"), "")

    code, out, err = users(p, capsys, "rotate", "fatima")
    assert code == 0, err
    lines = out.strip().splitlines()
    new = lines[-1]
    assert new.startswith("bct_") and new != token and new not in "\n".join(lines[:-1])
    assert verify(p, token) == (None, "unknown token")  # the old one is dead at once
    assert verify(p, new) == (User("fatima", "approver"), "")

    code, out, err = users(p, capsys, "remove", "fatima")
    assert code == 0 and "fatima (approver) removed" in out, err
    assert verify(p, new) == (None, "unknown token")
    assert listing(p, capsys) == []

    me = f"cli:{getpass.getuser()}"
    assert [(r.actor, r.action) for r in audit(p)] == [(me, "user_add"), (me, "user_role"), (me, "user_rotate"),
                                                       (me, "user_remove")]
    everything = "".join(r.detail for r in audit(p))
    for secret in (token, new):
        assert secret.rsplit("_", 1)[1] not in everything


def test_list_shows_name_role_created_and_expiry_never_a_token(
    p: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    tokens = [users(p, capsys, "add", name, "--role", role, *extra)[1].strip().splitlines()[-1]
              for name, role, extra in (("khalid", "viewer", ()), ("fatima", "officer", ("--expires", "12h")))]
    code, out, err = users(p, capsys, "list")
    assert code == 0, err
    assert "khalid" in out and "viewer" in out and "fatima" in out and "officer" in out
    for token in tokens:
        assert token not in out and token.split("_")[1] not in out
    rows = listing(p, capsys)
    assert [(r["name"], r["role"], r["expired"]) for r in rows] == [("fatima", "officer", False),
                                                                   ("khalid", "viewer", False)]
    assert all(set(r) == {"name", "role", "created", "expires", "expired"} for r in rows)
    assert all(str(r["created"]).endswith("+04:00") for r in rows)  # the time zone of channels.toml


def test_expiry_comes_from_expires_or_channels_toml(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    def lifetime(name: str) -> float:
        (account,) = [a for a in read(str(p.db), lambda s: Users(s.db).all()) if a.name == name]
        return account.expires_at - account.created_at

    assert users(p, capsys, "add", "default", "--role", "viewer")[0] == 0
    assert lifetime("default") == pytest.approx(90 * 86400, abs=5)
    assert users(p, capsys, "add", "short", "--role", "viewer", "--expires", "1d")[0] == 0
    assert lifetime("short") == pytest.approx(86400, abs=5)
    rewrite_config(p, token_expiry="7d")
    assert users(p, capsys, "add", "site", "--role", "viewer")[0] == 0
    assert lifetime("site") == pytest.approx(7 * 86400, abs=5)
    assert users(p, capsys, "rotate", "short")[0] == 0  # a rotated token gets the site's lifetime too
    assert lifetime("short") == pytest.approx(7 * 86400, abs=5)

    code, _, err = users(p, capsys, "add", "bad", "--role", "viewer", "--expires", "soon")
    assert code == 2 and "--expires" in err and "not a duration" in err
    code, _, err = users(p, capsys, "add", "bad", "--role", "viewer", "--expires", "30s")
    assert code == 2 and "at least a minute" in err
    rewrite_config(p, token_expiry="forever")
    code, _, err = users(p, capsys, "add", "bad", "--role", "viewer")
    assert code == 2 and "token_expiry" in err and "[broadcaster]" in err and "--expires" in err
    # --expires needs nothing from channels.toml.
    assert users(p, capsys, "add", "ok", "--role", "viewer", "--expires", "2h")[0] == 0


def test_users_need_no_token_and_work_without_a_usable_channels_toml(
    p: Providers, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BROADCASTER_TOKEN", raising=False)
    p.config.write_text("not toml at all [", encoding="utf-8")
    code, out, err = users(p, capsys, "add", "first-officer", "--role", "officer", "--expires", "30d")
    assert code == 0, err
    assert users(p, capsys, "role", "first-officer", "approver")[0] == 0
    code, out, err = users(p, capsys, "list", "--json")
    assert code == 0 and orjson.loads(out)[0]["expires"].endswith("+00:00")  # no time zone to read: UTC
    assert users(p, capsys, "remove", "first-officer")[0] == 0


def test_changes_to_someone_who_is_not_there_name_them(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (("remove", "ghost"), ("role", "ghost", "viewer"), ("rotate", "ghost")):
        code, _, err = users(p, capsys, *args)
        assert code == 2 and "no user 'ghost'" in err and "users list" in err
    assert audit(p) == []
