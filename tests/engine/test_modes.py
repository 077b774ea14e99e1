"""Dry-run opens no socket; exercise mode touches only exercise channels, every text marked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from broadcaster.cli import main
from broadcaster.netguard import NetworkForbidden, no_network
from tests.engine.providers import SECRETS, Providers


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def test_dry_run_reaches_no_socket(
    tmp_path: Path, connects: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=50) as p:
        code = main(p.cli("fire", "road_closure", "--use-examples", "--dry-run", "--json"))
        result = orjson.loads(capsys.readouterr().out)
        requests = [fake.requests for fake in (p.x, p.telegram, p.twilio, p.webhook)]
    assert code == 0
    assert result["mode"] == "dry-run"
    assert len(result["deliveries"]) == 2 + 1 + 50 + 1
    assert {d["state"] for d in result["deliveries"]} == {"sent"}
    assert connects == []
    assert requests == [[], [], [], []]


def test_the_dry_run_guard_really_refuses_connections(tmp_path: Path) -> None:
    async def try_to_post(url: str) -> None:
        async with aiohttp.ClientSession() as session, session.post(url, json={}) as response:
            await response.read()

    with Providers(tmp_path) as p, no_network(), pytest.raises(NetworkForbidden):
        asyncio.run(try_to_post(p.webhook.base_url + "/alerts"))
    assert p.webhook.deliveries == []


def test_exercise_touches_only_exercise_channels_and_marks_every_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def drill_channels(p: Providers) -> list[dict[str, Any]]:
        return [
            {"id": "telegram-drills", "kind": "telegram", "api_base": p.telegram.base_url,
             "chat_id": "@authority_drills", "token_env": "TELEGRAM_TOKEN", "exercise": True},
            {"id": "partner-drills", "kind": "webhook", "url": p.webhook.base_url + "/drills",
             "secret_env": "PARTNER_HOOK_SECRET", "exercise": True},
        ]

    with Providers(tmp_path, recipients=4, extra_channels=drill_channels) as p2:
        code = main(p2.cli("fire", "flood_warning", "--use-examples", "--exercise", "--json"))
        out = orjson.loads(capsys.readouterr().out)
        assert code == 0
        assert {d["channel"] for d in out["deliveries"]} == {"telegram-drills", "partner-drills"}
        assert p2.x.requests == [] and p2.twilio.requests == []
        assert [m["chat_id"] for m in p2.telegram.sent] == ["@authority_drills"]
        text = p2.telegram.sent[0]["text"]
        assert text.count("[تمرين]") == 1 and text.count("[EXERCISE]") == 1
        (delivery,) = p2.webhook.deliveries
        assert delivery.path == "/drills"
        assert delivery.json["status"] == "Exercise"
        assert all(info["short"].startswith(("[تمرين]", "[EXERCISE]")) for info in delivery.json["info"])

        # Naming a public channel in exercise mode is refused before anything is stored.
        code = main(p2.cli("fire", "flood_warning", "--use-examples", "--exercise", "--channels", "x-authority"))
        assert code == 2
        assert p2.x.requests == []


def test_live_without_yes_and_without_a_terminal_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=2) as p:
        code = main(p.cli("fire", "road_closure", "--use-examples", "--live", as_user="officer"))
        err = capsys.readouterr().err
        assert code == 2
        assert "confirmation" in err
        assert [f.requests for f in (p.x, p.telegram, p.twilio, p.webhook)] == [[], [], [], []]


def test_live_with_a_missing_secret_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    with Providers(tmp_path, recipients=2) as p:
        code = main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", as_user="officer"))
        err = capsys.readouterr().err
        assert code == 2
        assert "TWILIO_AUTH_TOKEN" in err
        assert [f.requests for f in (p.x, p.telegram, p.twilio, p.webhook)] == [[], [], [], []]
