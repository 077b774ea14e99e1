"""Area hierarchy: an alert for a district reaches the district, what is inside it, and what contains it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broadcaster.cli import main
from broadcaster.errors import TemplateError
from broadcaster.templates.gazetteer import load_gazetteer
from tests.support import token_file

REPO = Path(__file__).resolve().parents[2]
NOW = 1_795_000_000.0  # 2026-11-18: example times are relative to it, inside the years the system handles


def test_reach_covers_the_area_its_contents_and_its_containers() -> None:
    gazetteer = load_gazetteer(REPO / "templates" / "gazetteer.toml")
    assert gazetteer.reach("DXB-MARINA") == {"DXB-MARINA", "DXB"}
    whole = gazetteer.reach("DXB")
    assert {"DXB", "DXB-MARINA", "DXB-HATTA"} <= whole
    road = gazetteer.reach("E11")
    assert "DXB" in road and "DXB-MARINA" in road and "DXB-HATTA" not in road


def test_a_within_loop_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "gazetteer.toml"
    path.write_text(
        '[places.A]\ntype = "area"\nar = "أ"\nen = "A"\nwithin = "B"\n'
        '[places.B]\ntype = "area"\nar = "ب"\nen = "B"\nwithin = "A"\n',
        encoding="utf-8",
    )
    with pytest.raises(TemplateError, match="loop"):
        load_gazetteer(path)


async def test_emirate_wide_recipients_hear_about_a_district_closure() -> None:
    from broadcaster.engine.outbox import plan_alert
    from broadcaster.states import Mode
    from broadcaster.templates.variables import example_inputs
    from tests.support import loaded

    app = loaded(REPO / "channels.toml")
    plan = await plan_alert(app.config, app.catalogue, "road_closure",
                            example_inputs(app.catalogue.get("road_closure"), NOW, app.config.timezone),
                            mode=Mode.EXERCISE, now=NOW)
    exercise = {r.rendered.language: r.recipients for r in plan.rows if r.channel == "sms-exercise"}
    # recipients/exercise.csv registers phones for DXB (the emirate) and DXB-HATTA (off E11).
    assert sum(exercise.values()) >= 1
    phones = [d.recipient async for batch in plan.deliveries() for d in batch
              if d.channel_id == "sms-exercise"]
    areas = {line.split(",")[0]: line.split(",")[2].strip()
             for line in (REPO / "recipients" / "exercise.csv").read_text().splitlines()[1:]}
    assert {areas[p] for p in phones} == {"DXB"}


def test_approve_refuses_a_template_that_fails_its_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    shutil.copytree(REPO / "recipients", tmp_path / "recipients")
    config = (REPO / "channels.toml").read_text(encoding="utf-8")
    (tmp_path / "channels.toml").write_text(config, encoding="utf-8")
    path = tmp_path / "templates" / "road_closure.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("max_length = 40\n", "max_length = 400\n"),
                    encoding="utf-8")
    args = ["--config", str(tmp_path / "channels.toml"), "--db", str(tmp_path / "t.db")]
    approver = token_file(tmp_path, tmp_path / "t.db", "approver")
    assert main([*args, "--token-file", str(approver), "templates", "approve", "road_closure"]) == 2
    assert "not approved" in capsys.readouterr().err
    assert "sha256 = " in path.read_text(encoding="utf-8")  # the old (now stale) approval is untouched
    assert main([*args, "templates", "check"]) == 2
