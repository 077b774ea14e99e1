"""``broadcaster report ALERT_ID [--json | --html FILE]``: exit 0 with the figures, 2 for an unknown alert."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from broadcaster.cli import main
from tests.engine.providers import Providers
from tests.fakes.twilio import twilio_error


def fire_with_a_refused_sms(p: Providers, capsys: pytest.CaptureFixture[str]) -> str:
    p.twilio.script(twilio_error(400, 21211, "The 'To' number is not a valid phone number."))
    assert main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json", as_user="officer")) == 1
    return str(orjson.loads(capsys.readouterr().out)["alert_id"])


def test_report_prints_json_text_and_writes_html(p: Providers, capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    alert_id = fire_with_a_refused_sms(p, capsys)
    assert main(p.cli("report", alert_id, "--json")) == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["alert_id"] == alert_id
    assert [(f["reason"], f["final"]) for f in report["failures"]] == [("recipient_gone", 1)]
    sms = [r for r in report["reach"] if r["channel"] == "sms-residents"]
    assert sum(r["states"].get("failed", 0) for r in sms) == 1 and sum(r["recipients"] for r in sms) == 3

    assert main(p.cli("report", alert_id)) == 0
    text = capsys.readouterr().out
    assert "recipient_gone: 1 attempt(s), 1 final, on sms-residents" in text

    target = tmp_path / "incident" / "report.html"
    target.parent.mkdir()
    assert main(p.cli("report", alert_id, "--html", str(target))) == 0
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and '<html lang="ar" dir="rtl">' in page and alert_id in page


def test_an_unknown_alert_or_an_unwritable_file_exits_2_naming_it(p: Providers, capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    assert main(p.cli("report", "no-such-alert", "--json")) == 2
    captured = capsys.readouterr()
    assert "no alert with id 'no-such-alert'" in captured.err and captured.out == ""
    alert_id = fire_with_a_refused_sms(p, capsys)
    missing = tmp_path / "no-such-folder" / "report.html"
    assert main(p.cli("report", alert_id, "--html", str(missing))) == 2
    assert "cannot write the report to" in capsys.readouterr().err and not missing.exists()


def test_json_and_html_are_one_or_the_other(p: Providers) -> None:
    with pytest.raises(SystemExit) as exited:
        main(p.cli("report", "x", "--json", "--html", "r.html"))
    assert exited.value.code == 2
