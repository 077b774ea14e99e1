"""Runbook steps and drill channels: a live step (and its rehearsal) never reaches an ``exercise = true`` channel,
whatever the step's selection says."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broadcaster.app.context import open_app
from broadcaster.app.runbook import plan_occurrence
from broadcaster.states import Mode
from tests.runbooks.conftest import CLOSURE, TEMPLATES, closure, fast_channels, make_run
from tests.support import loaded, write_config

DRILLS = {"id": "telegram-drills", "kind": "telegram", "chat_id": "@authority_drills", "token_env": "TELEGRAM_TOKEN",
          "exercise": True, "rate_per_second": 100}


@pytest.mark.parametrize("mode", [Mode.LIVE, Mode.DRY_RUN])
async def test_a_live_step_to_all_channels_leaves_the_drill_channels_out(tmp_path: Path, mode: Mode) -> None:
    config = write_config(tmp_path, [*fast_channels(tmp_path), DRILLS], templates=str(TEMPLATES),
                          database="var/test.db")
    runbook = closure(tmp_path, text=CLOSURE.replace('channels = "x-authority,telegram-authority"',
                                                     'channels = "all"'))
    async with open_app(str(config), str(tmp_path / "var" / "test.db")) as app:
        run = make_run(loaded(config).config, runbook, mode=mode)
        _, plan = await plan_occurrence(app, run, runbook.steps[0], 0, mode=mode, now=time.time())
    assert plan.alert.channels == ("x-authority", "telegram-authority", "sms-residents")
