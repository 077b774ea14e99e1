"""Who the command line is: BROADCASTER_TOKEN or --token-file, verified as the service verifies a bearer token,
held to the same role checks, and named in the audit log (never ``cli:root``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import orjson
import pytest

from broadcaster.audit import AuditLog, AuditRow
from broadcaster.cli import main
from tests.cli.conftest import sent_anything
from tests.engine.providers import REPO, Providers
from tests.runbooks.conftest import CLOSURE, write_runbook
from tests.service.support import rewrite_config
from tests.support import add_user, read, token_file


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def audit(p: Providers, action: str | None = None) -> list[AuditRow]:
    return read(str(p.db), lambda s: AuditLog(s.db).tail(action, limit=500))


def live_fire(p: Providers, *extra: str, as_user: str | None = None) -> list[str]:
    return p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json", *extra, as_user=as_user)


def test_a_live_fire_acts_as_the_tokens_user_in_the_alert_and_the_audit_log(
    p: Providers, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, live_fire(p, as_user="officer"))
    assert code == 0, err
    first = orjson.loads(out)["alert_id"]
    # The same user by the environment variable instead of a file.
    monkeypatch.setenv("BROADCASTER_TOKEN", token_file(p.tmp_path, p.db, "officer").read_text().strip())
    code, out, err = run(capsys, live_fire(p))
    assert code == 0, err
    second = orjson.loads(out)["alert_id"]
    for alert_id in (first, second):
        assert read(str(p.db), lambda s, a=alert_id: s.alerts.get(a)).created_by == "officer"
    fires = audit(p, "fire")
    assert [r.actor for r in fires] == ["officer", "officer"]
    assert not any(r.actor.startswith("cli:") for r in audit(p))


@pytest.mark.parametrize("problem", ["open to others", "missing", "empty"])
def test_a_token_file_that_cannot_be_trusted_or_read_is_refused(
    p: Providers, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    path = p.tmp_path / "token"
    if problem == "open to others":
        path.write_text(add_user(p.db, "officer") + "\n", encoding="utf-8")
        path.chmod(0o644)
    elif problem == "empty":
        path.touch(mode=0o600)
    code, _, err = run(capsys, ["--config", str(p.config), "--db", str(p.db), "--token-file", str(path),
                                "fire", "road_closure", "--use-examples", "--live", "--yes"])
    assert code == 2 and "--token-file" in err
    assert {"open to others": "chmod 600", "missing": "no such file", "empty": "is empty"}[problem] in err
    assert not sent_anything(p)


@pytest.mark.parametrize(("token", "reason"), [
    ("not-a-token", "malformed token"), ("bct_0123456789abcdef_" + "a" * 64, "unknown token"),
    ("wrong secret", "wrong token secret"), ("expired", "token expired at"),
])
def test_a_refused_token_sends_nothing_and_is_audited_without_its_secret(
    p: Providers, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, token: str, reason: str
) -> None:
    if token == "wrong secret":
        good = add_user(p.db, "officer")
        token = good[:-4] + ("aaaa" if not good.endswith("aaaa") else "bbbb")
    elif token == "expired":
        token = add_user(p.db, "officer", expires_s=60, now=time.time() - 120)
    monkeypatch.setenv("BROADCASTER_TOKEN", token)
    code, _, err = run(capsys, live_fire(p))
    assert code == 2 and f"the token was refused ({reason}" in err and "BROADCASTER_TOKEN" in err
    assert not sent_anything(p)
    (failure,) = audit(p, "login_failure")
    detail = orjson.loads(failure.detail)
    assert failure.actor == "anonymous" and detail["face"] == "cli" and detail["command"] == "fire"
    assert detail["reason"].startswith(reason)
    assert token.rsplit("_", 1)[-1] not in failure.detail


def test_an_expired_token_is_refused_with_its_reason(
    p: Providers, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROADCASTER_TOKEN", add_user(p.db, "officer", expires_s=60, now=time.time() - 120))
    code, _, err = run(capsys, live_fire(p))
    assert code == 2 and "token expired at" in err and "broadcaster users rotate officer" in err
    assert not sent_anything(p)


@pytest.mark.parametrize(("user", "args"), [
    ("viewer", ("--live",)), ("operator", ("--live",)), ("viewer", ("--dry-run",)),
])
def test_a_role_that_may_not_is_refused_as_the_service_refuses_it(
    p: Providers, capsys: pytest.CaptureFixture[str], user: str, args: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, p.cli("fire", "road_closure", "--use-examples", *args, "--yes", as_user=user))
    assert code == 2 and "not allowed" in err and f"{user} is {user}" in err and "nothing was sent" in err
    assert not sent_anything(p) and read(str(p.db), lambda s: s.alerts.recent()) == []
    (forbidden,) = audit(p, "forbidden")
    assert forbidden.actor == user and orjson.loads(forbidden.detail)["role"] == user


def test_live_follow_ups_need_an_identity_too(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, live_fire(p, as_user="officer"))
    assert code == 0, err
    alert_id = orjson.loads(out)["alert_id"]
    before = [len(f.requests) for f in (p.x, p.telegram, p.twilio, p.webhook)]
    for follow_up in (["update", alert_id, "--var", "reason=flooding"], ["cancel", alert_id]):
        code, _, err = run(capsys, p.cli(*follow_up, "--live", "--yes"))
        assert code == 2 and "BROADCASTER_TOKEN" in err
        code, _, err = run(capsys, p.cli(*follow_up, "--live", "--yes", as_user="operator"))
        assert code == 2 and "not allowed" in err
    assert [len(f.requests) for f in (p.x, p.telegram, p.twilio, p.webhook)] == before
    code, _, err = run(capsys, p.cli("cancel", alert_id, "--live", "--yes", as_user="officer2"))
    assert code == 0, err
    assert [r.actor for r in audit(p, "cancel")] == ["officer2"]


def test_a_live_runbook_run_needs_an_officer(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_runbook(p.tmp_path, CLOSURE.replace("AFTER", "0s"))
    code, _, err = run(capsys, p.cli("runbook", "run", str(path), "--live", "--yes"))
    assert code == 2 and "a live runbook run" in err and "BROADCASTER_TOKEN" in err
    code, _, err = run(capsys, p.cli("runbook", "run", str(path), "--live", "--yes", as_user="operator"))
    assert code == 2 and "needs the officer role" in err
    assert not sent_anything(p)
    assert read(str(p.db), lambda s: s.runs.recent()) == []
    code, _, err = run(capsys, p.cli("runbook", "run", str(path), "--live", "--yes", as_user="officer"))
    assert code == 0, err
    (started,) = audit(p, "runbook_run")
    assert started.actor == "officer" and orjson.loads(started.detail)["mode"] == "live"


def test_a_live_schedule_needs_an_officer_and_names_them(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    schedule = ("fire", "road_closure", "--use-examples", "--live", "--yes", "--json", "--at", "+1h")
    code, _, err = run(capsys, p.cli(*schedule))
    assert code == 2 and "a live scheduled fire" in err
    code, _, err = run(capsys, p.cli(*schedule, as_user="viewer"))
    assert code == 2 and "not allowed" in err
    assert read(str(p.db), lambda s: s.runs.scheduled()) == []
    code, out, err = run(capsys, p.cli(*schedule, as_user="officer"))
    assert code == 0, err
    (row,) = audit(p, "schedule")
    assert row.actor == "officer" and orjson.loads(row.detail)["schedule_id"] == orjson.loads(out)["schedule_id"]


@pytest.fixture
def unapproved(p: Providers) -> Path:
    """The catalogue copied, with road_closure edited so that its approval is stale."""
    templates = p.tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    rewrite_config(p, templates=templates)
    path = templates / "road_closure.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("version = 1", "version = 2", 1), encoding="utf-8")
    return path


def test_only_an_approver_approves_and_the_approval_names_them(
    p: Providers, capsys: pytest.CaptureFixture[str], unapproved: Path
) -> None:
    stale = unapproved.read_text(encoding="utf-8")
    code, _, err = run(capsys, p.cli("templates", "approve", "road_closure"))
    assert code == 2 and "approving a template" in err and "--role approver" in err
    for user in ("viewer", "officer"):
        code, _, err = run(capsys, p.cli("templates", "approve", "road_closure", as_user=user))
        assert code == 2 and "needs the approver role" in err
    code, _, err = run(capsys, p.cli("templates", "approve", "road_closure", "--by", "Someone Else",
                                     as_user="approver"))
    assert code == 2 and "'Someone Else' is not you" in err
    assert unapproved.read_text(encoding="utf-8") == stale
    code, out, _ = run(capsys, p.cli("templates", "show", "road_closure", "--json"))
    reviewed = orjson.loads(out)["sha256"]
    code, out, err = run(capsys, p.cli("templates", "approve", "road_closure", "--sha256", reviewed,
                                       as_user="approver"))
    assert code == 0, err
    assert "approved road_closure by approver" in out
    assert 'by = "approver"' in unapproved.read_text(encoding="utf-8")
    (approval,) = audit(p, "approval")
    assert approval.actor == "approver" and orjson.loads(approval.detail)["template"] == "road_closure"
    assert sorted(r.actor for r in audit(p, "forbidden")) == ["officer", "viewer"]
