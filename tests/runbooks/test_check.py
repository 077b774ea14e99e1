"""`broadcaster runbook check`: every kind of broken runbook is rejected with an error naming file and step."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from broadcaster.cli import main
from broadcaster.runbooks.check import check_runbook
from broadcaster.runbooks.model import load_runbook
from broadcaster.runbooks.refs import RunbookError
from tests.runbooks.conftest import BASE, SHIPPED_CHANNELS, SHIPPED_RUNBOOKS, TEMPLATES, write_runbook
from tests.support import Loaded, loaded, write_config
from tests.templates.support import approve_as_is


def errors_of(files: Loaded, path: Path) -> list[str]:
    """Every error `runbook check` reports: a load error, or the checker's errors."""
    try:
        runbook = load_runbook(path)
    except RunbookError as exc:
        return [str(exc)]
    return [str(p) for p in check_runbook(runbook, files.config, files.catalogue) if p.level == "error"]


def broken(old: str, new: str) -> str:
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def test_the_base_runbook_is_clean(tmp_path: Path, shipped_config: Loaded) -> None:
    assert errors_of(shipped_config, write_runbook(tmp_path, BASE)) == []


@pytest.mark.parametrize("shipped", SHIPPED_RUNBOOKS, ids=lambda p: p.stem)
def test_every_shipped_runbook_passes_check(shipped: Path, shipped_config: Loaded) -> None:
    problems = check_runbook(load_runbook(shipped), shipped_config.config, shipped_config.catalogue)
    assert problems == []


CASES = {
    "unknown template": (('template = "flood_warning"', 'template = "tsunami"'), "watch", "unknown template 'tsunami'"),
    "unknown channel id": (('channels = "all"', 'channels = "fax-authority"'), "watch", "unknown channel id"),
    "unknown channel kind": (('channels = "all"', 'channels = "kind:fax"'), "watch", "no channel of kind 'fax'"),
    "unknown variable": (('vars = { level = "warning" }', 'vars = { level = "warning", colour = "red" }'),
                         "warning", "has no variable 'colour'"),
    "missing variable": (('vars = { event = "flood", area = "{input:area}", ended = "{now}" }',
                          'vars = { event = "flood", area = "{input:area}" }'), "all_clear", "'ended' is required"),
    "bad enum value": (('level = "watch"', 'level = "tsunami"'), "watch", "'tsunami' is not one of"),
    "undeclared input": (('until = "{input:until}"', 'until = "{input:deadline}"'), "watch",
                         "does not declare"),
    "malformed reference": (('until = "{input:until}"', 'until = "{inptu:until}"'), "watch", "not a reference"),
    "shifted non-datetime input": (('area = "{input:area}", until', 'area = "{input:area+1h}", until'), "watch",
                                   "is not type = \"datetime\""),
    "update of unknown step": (('update = "watch"', 'update = "watchh"'), "warning", "there is no step 'watchh'"),
    "update of a later step": (('update = "watch"', 'update = "all_clear"'), "warning", "that step comes later"),
    "negative duration": (('after = "1h"', 'after = "-2h"'), "warning", "cannot be negative"),
    "unparsable duration": (('after = "3h"', 'after = "three hours"'), "all_clear", "not a duration"),
    "every without until": (('until = "all_clear"\n', ''), "warning", "'every' without 'until'"),
    "until an unknown step": (('until = "all_clear"', 'until = "all_clearr"'), "warning", "no step 'all_clearr'"),
    "until an earlier step": (('until = "all_clear"', 'until = "watch"'), "warning", "must come after"),
    "both after and at": (('after = "3h"', 'after = "3h"\nat = "2030-01-01T00:00:00+04:00"'), "all_clear",
                          "either 'after'"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_check_rejects_each_kind_of_broken_runbook(case: str, tmp_path: Path, shipped_config: Loaded) -> None:
    (old, new), step, expected = CASES[case]
    path = write_runbook(tmp_path, broken(old, new))
    errors = errors_of(shipped_config, path)
    assert errors, case
    assert any(str(path) in e and f"step {step!r}" in e and expected in e for e in errors), errors


def test_a_cancel_of_an_unknown_or_later_step_is_rejected(tmp_path: Path, shipped_config: Loaded) -> None:
    for target, expected in (("nothing", "there is no step 'nothing'"), ("all_clear", "that step comes later")):
        text = BASE.replace('[[steps]]\nid = "all_clear"',
                            f'[[steps]]\nid = "oops"\ncancel = "{target}"\nafter = "1m"\n\n'
                            '[[steps]]\nid = "all_clear"')
        errors = errors_of(shipped_config, write_runbook(tmp_path, text))
        assert any("step 'oops'" in e and expected in e for e in errors), errors


def test_an_absolute_time_before_the_previous_step_is_impossible(tmp_path: Path, shipped_config: Loaded) -> None:
    text = """
name = { ar = "اختبار", en = "Test" }
[[steps]]
id = "first"
template = "road_closure"
at = 2030-01-02T10:00:00+04:00
vars.road = "E11"
vars.reason = "maintenance"
vars.starts = "2030-01-02T22:00:00+04:00"
vars.ends = "2030-01-03T05:00:00+04:00"
vars.detour = { ar = "شارع الخيل", en = "Al Khail Road" }
[[steps]]
id = "second"
update = "first"
at = "2030-01-01T10:00:00+04:00"
"""
    errors = errors_of(shipped_config, write_runbook(tmp_path, text))
    assert len(errors) == 1
    assert "step 'second'" in errors[0] and "impossible timing" in errors[0] and "before step 'first'" in errors[0]


def test_a_template_without_cancel_wording_is_rejected(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    cancel = templates / "cancel.toml"
    text = cancel.read_text(encoding="utf-8")
    line = 'road_closure = { ar = "إغلاق طريق", en = "Road closure" }\n'
    assert text.count(line) == 1
    cancel.write_text(text.replace(line, ""), encoding="utf-8")
    approve_as_is(cancel, "Test Officer", datetime(2026, 11, 22, 8, 0))
    shutil.copy(SHIPPED_CHANNELS.parent / "recipients" / "residents.csv", tmp_path / "residents.csv")
    config = write_config(tmp_path, [{"id": "x-authority", "kind": "x", "api_key_env": "X_API_KEY",
                                      "api_secret_env": "X_API_SECRET", "access_token_env": "X_ACCESS_TOKEN",
                                      "access_secret_env": "X_ACCESS_SECRET"}], templates=str(templates))
    files = loaded(config)
    runbook = tmp_path / "closure.toml"
    runbook.write_text(SHIPPED_RUNBOOKS[-1].read_text(encoding="utf-8"), encoding="utf-8")
    errors = errors_of(files, runbook)
    assert any("step 'announcement'" in e and "has no cancel wording" in e and "'road_closure'" in e
               for e in errors), errors


def test_check_cli_lists_every_error_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = BASE.replace('template = "flood_warning"', 'template = "tsunami"')
    text = text.replace('ended = "{now}"', 'ended = "{input:nope}"')
    path = write_runbook(tmp_path, text)
    code = main(["--config", str(SHIPPED_CHANNELS), "--db", str(tmp_path / "t.db"), "runbook", "check", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown template 'tsunami'" in err and "input 'nope'" in err
    code = main(["--config", str(SHIPPED_CHANNELS), "--db", str(tmp_path / "t.db"), "runbook", "check", str(path),
                 "--json"])
    report = orjson.loads(capsys.readouterr().out)
    assert code == 2 and report["ok"] is False
    assert {p["where"] for p in report["problems"]} >= {f"{path}: step 'watch'", f"{path}: step 'all_clear'"}


def test_check_cli_finds_a_runbook_by_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--config", str(SHIPPED_CHANNELS), "--db", str(tmp_path / "t.db"), "runbook", "check",
                 "flood_response"])
    assert code == 0
    assert "flood_response.toml: ok" in capsys.readouterr().out


def test_recurrence_warnings(tmp_path: Path, shipped_config: Loaded) -> None:
    config, catalogue = shipped_config.config, shipped_config.catalogue
    never = BASE.replace('after = "3h"', 'after = "0m"')
    problems = check_runbook(load_runbook(write_runbook(tmp_path, never)), config, catalogue)
    assert [p.level for p in problems] == ["warning"]
    assert "never repeats" in problems[0].message
    often = BASE.replace('every = "1h"', 'every = "30s"')
    problems = check_runbook(load_runbook(write_runbook(tmp_path, often)), config, catalogue)
    assert [p.level for p in problems] == ["warning"]
    assert "more than 200 times" in problems[0].message
