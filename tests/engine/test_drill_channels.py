"""Drill channels (``exercise = true``): a live fire never reaches them, an exercise reaches nothing else, and a
follow-up is checked against channels.toml as it stands today, not as it stood when the original went out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.audit import AuditLog, AuditRow
from broadcaster.cli import main
from broadcaster.store import Store
from tests.engine.providers import REPO, SECRETS, Providers
from tests.support import Reader, read, write_config

ROAD = ("road_closure", "--use-examples")


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def drills(p: Providers) -> list[dict[str, Any]]:
    return [
        {"id": "telegram-drills", "kind": "telegram", "api_base": p.telegram.base_url, "chat_id": "@authority_drills",
         "token_env": "TELEGRAM_TOKEN", "exercise": True, "rate_per_second": 50},
        {"id": "partner-drills", "kind": "webhook", "url": p.webhook.base_url + "/drills",
         "secret_env": "PARTNER_HOOK_SECRET", "exercise": True, "rate_per_second": 50},
    ]


def reconfigure(p: Providers, **exercise: bool) -> None:
    """channels.toml again, with ``exercise`` set anew on the channels named (``telegram_drills=False``)."""
    channels = p.default_channels() + drills(p)
    for channel in channels:
        key = channel["id"].replace("-", "_")
        if key in exercise:
            channel["exercise"] = exercise[key]
    write_config(p.tmp_path, channels, templates=str(REPO / "templates"), database="var/broadcaster.db")


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, Any, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, orjson.loads(out) if out.strip().startswith("{") else out, err


def test_a_live_fire_reaches_no_exercise_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before, "all" took the drill channels too: a live alert went out on the drill chat and the drill hook."""
    with Providers(tmp_path, recipients=2, extra_channels=drills) as p:
        code, out, err = run(capsys, p.cli("fire", *ROAD, "--live", "--yes", "--json", as_user="officer"))
        assert code == 0, err
        assert {d["channel"] for d in out["deliveries"]} == {"x-authority", "telegram-authority", "sms-residents",
                                                             "partner-hook"}
        assert [m["chat_id"] for m in p.telegram.sent] == ["@authority_alerts"]
        assert [d.path for d in p.webhook.deliveries] == ["/alerts"]
        assert Reader(p.db).alert(out["alert_id"]).channels == ("x-authority", "telegram-authority", "sms-residents",
                                                                 "partner-hook")


def test_a_dry_run_names_the_drill_channels_it_leaves_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An operator rehearsing a fire sees which configured channels it will not reach, and why."""
    with Providers(tmp_path, recipients=2, extra_channels=drills) as p:
        code, out, err = run(capsys, p.cli("fire", *ROAD, "--dry-run"))
        assert code == 0, err
        flat = " ".join(str(out).split())
        assert "drill channels left out (exercise = true, reached by --exercise only): telegram-drills, " \
               "partner-drills" in flat
        code, out, err = run(capsys, p.cli("fire", *ROAD, "--exercise"))
        assert code == 0, err
        assert "drill channels left out" not in str(out)


def test_naming_an_exercise_channel_in_a_live_fire_is_refused_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=2, extra_channels=drills) as p:
        code, _, err = run(capsys, p.cli("fire", *ROAD, "--live", "--yes", "--channels",
                                         "telegram-authority,telegram-drills", as_user="officer"))
        assert code == 2
        flat = " ".join(err.split())
        assert "channel 'telegram-drills' is an exercise channel (exercise = true in channels.toml)" in flat
        assert "a live alert never goes to a drill channel; use --exercise to reach it" in flat
        assert Reader(p.db).alerts() == []
        assert p.telegram.requests == [] and p.webhook.requests == []


def test_an_exercise_update_skips_a_channel_that_is_no_longer_an_exercise_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The drill chat became a public chat after the exercise: its update must not reach the public."""
    with Providers(tmp_path, recipients=2, extra_channels=drills) as p:
        code, original, err = run(capsys, p.cli("fire", *ROAD, "--exercise", "--json"))
        assert code == 0, err
        assert [m["chat_id"] for m in p.telegram.sent] == ["@authority_drills"]
        reconfigure(p, telegram_drills=False)

        code, rehearsal, err = run(capsys, p.cli("update", original["alert_id"], "--dry-run", "--json"))
        assert code == 0, err  # a rehearsal of the update skips it as the exercise update will
        assert {d["channel"] for d in rehearsal["deliveries"]} == {"partner-drills"}

        code, update, err = run(capsys, p.cli("update", original["alert_id"], "--exercise", "--json"))
        assert code == 0, err
        flat = " ".join(err.split())
        assert "warning: channel 'telegram-drills' is skipped: no longer an exercise channel" in flat
        assert {d["channel"] for d in update["deliveries"]} == {"partner-drills"}
        assert len(p.telegram.sent) == 1  # nothing more on the chat that is public now
        assert [d.path for d in p.webhook.deliveries] == ["/drills", "/drills"]
        assert p.webhook.deliveries[1].json["msgType"] == "Update"
        assert Reader(p.db).alert(update["alert_id"]).channels == ("partner-drills",)


def test_an_exercise_follow_up_with_no_exercise_channel_left_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=2, extra_channels=drills) as p:
        code, original, err = run(capsys, p.cli("fire", *ROAD, "--exercise", "--json"))
        assert code == 0, err
        reconfigure(p, telegram_drills=False, partner_drills=False)
        code, _, err = run(capsys, p.cli("cancel", original["alert_id"], "--exercise"))
        assert code == 2
        flat = " ".join(err.split())
        assert f"alert {original['alert_id']}: no channel it went to may take this exercise cancel" in flat
        assert "telegram-drills: no longer an exercise channel" in flat and "partner-drills:" in flat
        assert [a.id for a in Reader(p.db).alerts()] == [original["alert_id"]]
        assert len(p.telegram.sent) == 1 and len(p.webhook.deliveries) == 1


def test_a_live_cancel_skips_a_channel_that_became_a_drill_channel_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=2, extra_channels=drills) as p:
        code, original, err = run(capsys, p.cli("fire", *ROAD, "--live", "--yes", "--json", as_user="officer"))
        assert code == 0, err
        reconfigure(p, partner_hook=True)
        code, cancel, err = run(capsys, p.cli("cancel", original["alert_id"], "--live", "--yes", "--json",
                                                as_user="officer"))
        assert code == 0, err
        flat = " ".join(err.split())
        assert "warning: channel 'partner-hook' is skipped: now an exercise channel" in flat
        assert f"though alert {original['alert_id']} went there" in flat
        assert "partner-hook" not in {d["channel"] for d in cancel["deliveries"]}
        assert [d.path for d in p.webhook.deliveries] == ["/alerts"]  # the original only
        cancels = [orjson.loads(r.detail) for r in read(str(p.db), audit_rows) if r.action == "cancel"]
        assert [c["skipped"].keys() for c in cancels] == [{"partner-hook"}]  # the audit row says what was left out


async def audit_rows(store: Store) -> list[AuditRow]:
    return [row async for row in AuditLog(store.db).rows()]
