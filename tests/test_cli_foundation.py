"""The command line, in-process: templates, preview, a dry-run fire and its log, exit codes."""

from __future__ import annotations

import argparse
import math
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.cli import main
from broadcaster.cli.numbers import seconds
from tests.support import Reader, token_file

if TYPE_CHECKING:
    from broadcaster.app.context import App
    from broadcaster.engine.outbox import Plan

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "channels.toml"
REQUIRED = ("road_closure", "flood_warning", "earthquake", "all_clear", "cancel")
TOMORROW = datetime.now(ZoneInfo("Asia/Dubai")).replace(hour=22, minute=0, second=0, microsecond=0) + timedelta(days=1)
ROAD_VARS = ["--var", "road=E311", "--var", "reason=accident", "--var", f"starts={TOMORROW.isoformat()}",
             "--var", f"ends={(TOMORROW + timedelta(hours=7)).isoformat()}", "--var", "detour.ar=شارع الخيل",
             "--var", "detour.en=Al Khail Road"]
LOG_KEYS = {"alert_id", "channel", "recipient", "language", "attempt", "outcome", "http_status", "error_code",
            "provider_id", "started_at", "finished_at"}


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        self.capsys = capsys
        self.config = CONFIG
        self.db = tmp_path / "t.db"

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--config", str(self.config), "--db", str(self.db), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> dict[str, object]:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        doc = orjson.loads(out)
        assert isinstance(doc, dict)
        return doc


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    return Cli(capsys, tmp_path)


@pytest.fixture
def own_copy(cli: Cli, tmp_path: Path) -> Path:
    """Point the CLI at a copy of channels.toml, templates and recipients that a test may edit."""
    home = tmp_path / "site"
    home.mkdir()
    shutil.copy(CONFIG, home / "channels.toml")
    for folder in ("templates", "recipients", "var/cap-signing"):  # the CAP signing key it names, too
        shutil.copytree(ROOT / folder, home / folder)
    cli.config = home / "channels.toml"
    return home


def test_templates_check_passes_on_the_shipped_catalogue(cli: Cli) -> None:
    code, out, err = cli("templates", "check")
    assert code == 0, err
    assert "templates OK" in out
    for template_id in REQUIRED:
        assert template_id in out


def test_templates_check_exits_2_and_names_the_problem(cli: Cli, own_copy: Path) -> None:
    path = own_copy / "templates" / "earthquake.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('urgency = "Immediate"', 'urgency = "Expected"'),
                    encoding="utf-8")
    code, _, err = cli("templates", "check")
    assert code == 2
    assert f"{path}: [approval] sha256: stale" in err
    assert "1 problem(s)" in err


def test_templates_approve_makes_check_pass_again(cli: Cli, own_copy: Path) -> None:
    path = own_copy / "templates" / "earthquake.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('urgency = "Immediate"', 'urgency = "Expected"'),
                    encoding="utf-8")
    approver = token_file(own_copy, cli.db, "approver")
    code, _, err = cli("--token-file", str(approver), "templates", "approve", "earthquake")
    assert code == 2 and "--sha256" in err  # not on a terminal: it shows the content, approves nothing
    assert cli("templates", "check")[0] == 2
    sha256 = cli.json("templates", "show", "earthquake")["sha256"]
    code, out, err = cli("--token-file", str(approver), "templates", "approve", "earthquake", "--sha256", str(sha256))
    assert code == 0, err
    assert "approved earthquake by approver" in out
    assert cli("templates", "check")[0] == 0


def test_templates_list_json(cli: Cli) -> None:
    code, out, err = cli("templates", "list", "--json")
    assert code == 0, err
    listing = orjson.loads(out)
    assert {t["id"] for t in listing} >= set(REQUIRED)
    assert all(t["approved"] for t in listing)


def test_templates_show_json_has_the_contract_keys(cli: Cli) -> None:
    doc = cli.json("templates", "show", "road_closure")
    assert {"id", "version", "cap", "variables"} <= doc.keys()
    assert doc["id"] == "road_closure"
    assert doc["version"] == 1
    cap = doc["cap"]
    assert isinstance(cap, dict)
    assert cap["category"] == "Transport" and cap["responseType"] == "Avoid"
    variables = doc["variables"]
    assert isinstance(variables, list)
    assert [v["name"] for v in variables] == ["road", "reason", "starts", "ends", "detour"]
    for variable in variables:
        assert {"name", "type", "max_length", "required", "examples"} <= variable.keys()
        assert set(variable["examples"]) == {"ar", "en"}
        assert isinstance(variable["max_length"], int) and isinstance(variable["required"], bool)
    detour = variables[-1]
    assert detour["type"] == "text"
    assert detour["examples"] == {"ar": "شارع الخيل وشارع الإمارات", "en": "Al Khail Road and Emirates Road"}


def test_templates_show_of_an_unknown_id_exits_2(cli: Cli) -> None:
    code, out, err = cli("templates", "show", "road_closed")
    assert code == 2
    assert "no template 'road_closed'" in err and "road_closure" in err
    assert "nothing was sent" in err
    assert out == ""


def test_preview_with_examples_json(cli: Cli) -> None:
    doc = cli.json("preview", "road_closure", "--use-examples")
    messages = doc["messages"]
    assert isinstance(messages, list) and messages
    for message in messages:
        assert {"channel", "kind", "language", "text", "length", "limit", "segments", "recipients",
                "cost_segments"} <= message.keys()
        assert message["length"] <= message["limit"]
        assert message["text"]
    combined = [m for m in messages if m["channel"] == "telegram-authority"]
    assert [m["language"] for m in combined] == ["ar+en"]
    assert combined[0]["kind"] == "telegram"
    assert combined[0]["text"].index("شارع الشيخ زايد") < combined[0]["text"].index("Sheikh Zayed Road")
    sms = [m for m in messages if m["kind"] == "sms"]
    assert sms
    for message in sms:
        assert isinstance(message["segments"], int) and message["segments"] >= 1
        assert message["cost_segments"] == message["segments"] * message["recipients"]
    x = [m["language"] for m in messages if m["channel"] == "x-authority"]
    assert x == ["ar", "en"]  # Arabic first
    assert all(m["segments"] is None for m in messages if m["kind"] != "sms")


def test_preview_with_vars(cli: Cli) -> None:
    doc = cli.json("preview", "road_closure", *ROAD_VARS, "--channels", "kind:x")
    messages = doc["messages"]
    assert isinstance(messages, list)
    assert {m["channel"] for m in messages} == {"x-authority"}
    en = next(m for m in messages if m["language"] == "en")
    # Each value isolated left to right in the English text (LRI … PDI).
    assert ("\u2066Sheikh Mohammed Bin Zayed Road\u2069 will be closed from \u2066"
            in en["text"])
    assert "\u2066Al Khail Road\u2069" in en["text"]


@pytest.mark.parametrize(
    ("bad", "name"),
    [
        ("road=E999", "road"),
        ("detour.en=see bit.ly/x", "detour"),
        (f"starts={TOMORROW.replace(tzinfo=None).isoformat()}", "starts"),
        ("reason=roadworks", "reason"),
        ("detour.en=Al Khail\u202eRoad", "detour"),
    ],
)
def test_a_bad_var_exits_2_and_names_the_variable(cli: Cli, bad: str, name: str) -> None:
    args = list(ROAD_VARS)
    key = bad.split("=")[0]
    index = next(i for i, a in enumerate(args) if a.startswith(key + "="))
    args[index] = bad
    code, out, err = cli("preview", "road_closure", *args)
    assert code == 2
    assert f"'{name}'" in err
    assert "nothing was sent" in err
    assert out == ""


def test_a_missing_var_exits_2(cli: Cli) -> None:
    code, _, err = cli("preview", "road_closure", "--var", "road=E11")
    assert code == 2
    assert "missing required variables: reason, starts, ends, detour" in err  # all at once, not one a run
    assert "--var NAME=VALUE" in err and "nothing was sent" in err


def test_a_malformed_var_exits_2(cli: Cli) -> None:
    code, _, err = cli("preview", "road_closure", "--var", "road")
    assert code == 2
    assert "expected NAME=VALUE" in err


def test_fire_needs_a_mode(cli: Cli) -> None:
    with pytest.raises(SystemExit) as caught:
        cli("fire", "road_closure", "--use-examples")
    assert caught.value.code == 2


def test_fire_dry_run_then_log(cli: Cli) -> None:
    doc = cli.json("fire", "road_closure", "--use-examples", "--dry-run")
    alert_id = doc["alert_id"]
    assert isinstance(alert_id, str) and alert_id
    assert doc["mode"] == "dry-run"
    deliveries = doc["deliveries"]
    assert isinstance(deliveries, list) and deliveries
    for delivery in deliveries:
        assert {"channel", "recipient", "language", "state", "attempts", "provider_id"} <= delivery.keys()
        assert delivery["state"] == "sent"
        assert delivery["attempts"] >= 1
    kinds = {d["channel"] for d in deliveries}
    assert {"x-authority", "telegram-authority", "sms-residents", "partner-hook"} <= kinds
    sms = [d for d in deliveries if d["channel"] == "sms-residents"]
    assert sms and all(d["recipient"].startswith("+971") for d in sms)
    assert ("x-authority", "ar") in {(d["channel"], d["language"]) for d in deliveries}

    code, out, err = cli("log", alert_id, "--json")
    assert code == 0, err
    lines = [orjson.loads(line) for line in out.splitlines() if line.strip()]
    assert len(lines) == sum(d["attempts"] for d in deliveries)
    for line in lines:
        assert line.keys() >= LOG_KEYS
        assert line["alert_id"] == alert_id
        assert line["outcome"] == "sent"
        assert line["started_at"] and line["finished_at"]
        assert line["attempt"] >= 1
    logged = {(line["channel"], line["recipient"], line["language"]) for line in lines}
    assert logged == {(d["channel"], d["recipient"], d["language"]) for d in deliveries}


def test_log_of_an_unknown_alert_exits_2(cli: Cli) -> None:
    code, _, err = cli("log", "20260101-000000-abcdef", "--json")
    assert code == 2
    assert "20260101-000000-abcdef" in err


def test_a_bad_config_exits_2_naming_file_channel_and_key(cli: Cli, own_copy: Path) -> None:
    config = own_copy / "channels.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('token_env = "TELEGRAM_POLICE_TOKEN"',
                                                                 'token_env = "123456:AAE-secret"'),
                      encoding="utf-8")
    code, out, err = cli("fire", "road_closure", "--use-examples", "--dry-run", "--json")
    assert code == 2
    assert str(config) in err and "'telegram-police-en'" in err and "'token_env'" in err
    assert "123456:AAE-secret" not in err
    assert out == ""
    assert not cli.db.exists()  # nothing was stored, let alone sent


def test_channels_check_in_dry_run_only_warns_about_secrets(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_SECRET", "TELEGRAM_TOKEN",
                 "TELEGRAM_POLICE_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PARTNER_HOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = cli("channels", "check", "--dry-run")
    assert code == 0, err
    assert "warning" in err and "TELEGRAM_TOKEN" in err
    code, _, err = cli("channels", "check")
    assert code == 2
    assert "'sms-residents'" in err and "TWILIO_AUTH_TOKEN" in err


def edit_config(own_copy: Path, old: str, new: str) -> Path:
    config = own_copy / "channels.toml"
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")
    return config


def test_an_area_typo_in_channels_toml_exits_2_naming_it(cli: Cli, own_copy: Path) -> None:
    """Before, the channel was silently left out of a fire for that area, and the fire exited 0."""
    config = edit_config(own_copy, 'layout = "separate"', 'layout = "separate"\nareas = ["DXB-DIERA"]')
    for command in (("channels", "check", "--dry-run"), ("fire", "road_closure", "--use-examples", "--dry-run")):
        code, out, err = cli(*command)
        assert code == 2, (command, out, err)
        assert str(config) in err and "'telegram-police-en'" in err and "'areas'" in err
        assert "'DXB-DIERA' is not an area" in err and "did you mean 'DXB-DEIRA'?" in err
    assert not cli.db.exists()  # nothing stored, nothing sent


@pytest.mark.parametrize(("value", "shown"), [("nan", "nan"), ("inf", "inf"), ("1e-4", "0.0001"), ("0", "0")])
def test_an_unusable_rate_exits_2_naming_the_key_and_its_bounds(cli: Cli, own_copy: Path, value: str,
                                                              shown: str) -> None:
    """nan crashed the dispatcher; a tiny rate held a dry-run (1e-9 ran forever), so the bounds are said."""
    config = edit_config(own_copy, "rate_per_second = 10", f"rate_per_second = {value}")
    code, out, err = cli("fire", "road_closure", "--use-examples", "--dry-run", "--json")
    assert code == 2, err
    assert str(config) in err and "'sms-residents'" in err
    assert "'rate_per_second': must be a number from 0.001 to 100000 (messages per second)" in err
    assert f"not {shown}" in err
    assert out == "" and not cli.db.exists()


def test_a_recipient_path_that_is_a_folder_exits_2(cli: Cli, own_copy: Path) -> None:
    config = edit_config(own_copy, 'recipients = "recipients/residents.csv"', 'recipients = "recipients"')
    code, out, err = cli("fire", "road_closure", "--use-examples", "--dry-run", "--json")
    assert code == 2, err
    assert f"{config}: channel 'sms-residents': key 'recipients': {own_copy / 'recipients'}: recipient list is a " \
           "folder, not a file" in err.replace("\n", "")
    assert out == "" and Reader(cli.db).alerts() == []  # nothing stored, nothing sent


def test_a_latin1_recipient_list_exits_2_naming_line_and_byte(cli: Cli, own_copy: Path) -> None:
    residents = own_copy / "recipients" / "residents.csv"
    lines = residents.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].rstrip(b"\r\n") + "  # Café".encode("latin-1") + b"\n"
    residents.write_bytes(b"".join(lines))
    column = len(lines[2].split(b"\xe9")[0]) + 1
    code, out, err = cli("fire", "road_closure", "--use-examples", "--dry-run", "--json")
    assert code == 2, err
    flat = err.replace("\n", "")
    assert "'sms-residents': key 'recipients'" in flat and str(residents) in flat
    assert f"line 3, column {column}: byte 0xE9 is not UTF-8; the recipient list must be UTF-8 text" in flat
    assert out == "" and Reader(cli.db).alerts() == []  # nothing stored, nothing sent


def test_a_disk_that_fills_while_a_fire_goes_out_says_so_and_resume_finishes(
    cli: Cli, own_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, every channel's worker raised at once: an ExceptionGroup traceback, exit 1, no word on what to do."""
    from broadcaster.app import fire

    residents = own_copy / "recipients" / "residents.csv"
    residents.write_text("phone,language,area\n" + "".join(f"+9715{i:08d},ar,DXB\n" for i in range(3000)),
                         encoding="utf-8")
    committed = fire.audit_commit

    async def then_the_disk_fills(app: App, plan: Plan, created: int, skipped: int) -> None:
        await committed(app, plan, created, skipped)
        pages = (await app.store.db.execute("PRAGMA page_count")).rows[0][0]
        await app.store.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on

    monkeypatch.setattr(fire, "audit_commit", then_the_disk_fills)
    code, _, err = cli("fire", "road_closure", "--use-examples", "--dry-run")
    assert code == 1, err
    flat = " ".join(err.split())
    assert "database or disk is full: free some space" in flat and "run `broadcaster resume`" in flat
    assert "Traceback" not in err and "ExceptionGroup" not in err and "cannot rollback" not in err
    (alert,) = Reader(cli.db).alerts()

    monkeypatch.undo()  # space again; the fire's process has ended, so its leases are taken back
    from broadcaster.app import resume

    monkeypatch.setattr(resume, "owner_is_dead", lambda owner: True)
    code, _, err = cli("resume")
    assert code == 0, err
    deliveries = Reader(cli.db).deliveries(alert.id)
    assert len([d for d in deliveries if d.channel_id == "sms-residents"]) == 3000
    assert {d.state for d in deliveries} == {"sent"}


@pytest.mark.parametrize(("args", "words"), [
    (["worker", "--heartbeat", "nan"], "--heartbeat: must be a number of seconds from 0.1 to 60, not 'nan'"),
    (["worker", "--dead-after", "inf"], "--dead-after: must be a number of seconds from 1 to 3600, not 'inf'"),
    (["worker", "--poll", "-1"], "--poll: must be a number of seconds from 0.01 to 60, not '-1'"),
    (["serve", "--port", "99999"], "--port: must be a whole number from 1 to 65535, not '99999'"),
    (["serve", "--port", "٨٠"], "--port: must be a whole number from 1 to 65535"),
])
def test_numeric_options_outside_their_bounds_exit_2_naming_them(
    cli: Cli, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    """type=float took nan and inf: a worker beating every nan seconds never beat."""
    with pytest.raises(SystemExit) as caught:
        cli(*args)
    assert caught.value.code == 2
    assert words in capsys.readouterr().err


@given(st.text(max_size=12))
def test_a_seconds_option_is_a_finite_number_in_bounds_or_a_usage_error(text: str) -> None:
    try:
        value = seconds(0.1, 60)(text)
    except argparse.ArgumentTypeError as exc:
        assert "from 0.1 to 60" in str(exc)
        return
    assert math.isfinite(value) and 0.1 <= value <= 60
