"""A dry-run delivery reads "recorded", never "sent", wherever a person reads it; JSON keeps the stored
state ("sent") beside ``"mode": "dry-run"``."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from broadcaster.cli import main
from broadcaster.states import Mode, state_word
from tests.engine.providers import Providers

SENT_WORD = re.compile(r"(?<!not )\bsent\b")  # "dry-run: not sent" (an attempt's detail) says it right


def fire(p: Providers, capsys: pytest.CaptureFixture[str], *mode: str) -> str:
    assert main(p.cli("fire", "road_closure", "--use-examples", *mode, "--json", as_user="officer")) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert {d["state"] for d in doc["deliveries"]} == {"sent"}  # as stored
    return str(doc["alert_id"])


def tables(out: str) -> str:
    """The table rows of a command's output (no banner, no closing sentence)."""
    return "\n".join(line for line in out.splitlines() if "│" in line or "┃" in line)


def test_a_dry_run_log_says_recorded(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(p.cli("fire", "road_closure", "--use-examples", "--dry-run", "--log")) == 0
    fired = capsys.readouterr().out
    alert_id = re.search(r"alert (\S+) · road_closure", fired)
    assert alert_id is not None
    assert main(p.cli("log", alert_id[1])) == 0
    logged = capsys.readouterr().out
    for out in (fired, logged):
        rows = tables(out)
        assert "recorded" in rows
        assert not SENT_WORD.search(rows)
        assert f"alert {alert_id[1]} · road_closure · dry-run · Alert · recorded " in out
    assert not any(fake.requests for fake in (p.x, p.telegram, p.twilio, p.webhook))


def test_json_keeps_the_stored_state_beside_the_mode(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    alert_id = fire(p, capsys, "--dry-run")
    assert main(p.cli("log", alert_id, "--json")) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines and {(line["outcome"], line["mode"]) for line in lines} == {("sent", "dry-run")}


def test_a_dry_run_report_says_recorded_in_text_and_html(p: Providers, capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    alert_id = fire(p, capsys, "--dry-run")
    assert main(p.cli("report", alert_id)) == 0
    reach = capsys.readouterr().out.split("commit-to-accepted")[0]
    assert "recorded" in reach and not SENT_WORD.search(reach.split("\n", 2)[2])
    target = tmp_path / "report.html"
    assert main(p.cli("report", alert_id, "--html", str(target))) == 0
    capsys.readouterr()
    page = target.read_text(encoding="utf-8")
    assert "سُجّلت" in page and "أُرسلت" not in page
    assert "recorded" in page
    assert main(p.cli("report", alert_id, "--json")) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["mode"] == "dry-run" and all("sent" in r["states"] for r in report["reach"])


def test_a_live_delivery_still_says_sent(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    alert_id = fire(p, capsys, "--live", "--yes")
    assert main(p.cli("log", alert_id)) == 0
    rows = tables(capsys.readouterr().out)
    assert SENT_WORD.search(rows) and "recorded" not in rows


def test_only_a_dry_runs_sent_is_recorded() -> None:
    assert state_word("sent", Mode.DRY_RUN) == "recorded"
    assert state_word("failed", Mode.DRY_RUN) == "failed"
    assert state_word("sent", Mode.EXERCISE) == state_word("sent", Mode.LIVE) == "sent"
