"""Builders for runbook tests: a fast test config, runbook files, and runs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from broadcaster.runbooks.records import RunRecord
from broadcaster.runbooks.store import new_run_id

from broadcaster.app import App, load_app
from broadcaster.runbooks.inputs import resolve_inputs
from broadcaster.runbooks.model import Runbook, load_runbook
from tests.engine.providers import write_recipients
from tests.support import write_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CHANNELS = ROOT / "channels.toml"
SHIPPED_RUNBOOKS = sorted((ROOT / "runbooks").glob("*.toml"))
TEMPLATES = ROOT / "templates"

# A valid runbook the broken-runbook tests mutate one line at a time.
BASE = """
name = { ar = "اختبار", en = "Test" }

[[inputs]]
name = "area"
example = "DXB-HATTA"

[[inputs]]
name = "until"
type = "datetime"
example = "+6h"

[[steps]]
id = "watch"
template = "flood_warning"
channels = "all"
vars = { level = "watch", area = "{input:area}", until = "{input:until}" }

[[steps]]
id = "warning"
update = "watch"
after = "1h"
every = "1h"
until = "all_clear"
vars = { level = "warning" }

[[steps]]
id = "all_clear"
template = "all_clear"
after = "3h"
confirm = true
vars = { event = "flood", area = "{input:area}", ended = "{now}" }
"""


def fast_channels(tmp_path: Path, **extra: Any) -> list[dict[str, Any]]:
    """Recorder-friendly channels: high rates so real-time dry-run fires take a fraction of a second."""
    write_recipients(tmp_path / "residents.csv", 6)
    return [
        {"id": "x-authority", "kind": "x", "api_key_env": "X_API_KEY", "api_secret_env": "X_API_SECRET",
         "access_token_env": "X_ACCESS_TOKEN", "access_secret_env": "X_ACCESS_SECRET", "rate_per_second": 100},
        {"id": "telegram-authority", "kind": "telegram", "chat_id": "@authority_alerts",
         "token_env": "TELEGRAM_TOKEN", "rate_per_second": 100},
        {"id": "sms-residents", "kind": "sms", "account_sid_env": "TWILIO_ACCOUNT_SID",
         "auth_token_env": "TWILIO_AUTH_TOKEN", "from": "+15005550006", "recipients": "residents.csv",
         "rate_per_second": 100, **extra},
    ]


@pytest.fixture
def shipped_app(tmp_path: Path) -> App:
    """The shipped channels.toml and catalogue over a private database."""
    return load_app(str(SHIPPED_CHANNELS), str(tmp_path / "var" / "broadcaster.db"))


@pytest.fixture
def fast_app(tmp_path: Path) -> App:
    config = write_config(tmp_path, fast_channels(tmp_path), templates=str(TEMPLATES), database="var/test.db")
    return load_app(str(config), str(tmp_path / "var" / "test.db"))


def write_runbook(tmp_path: Path, text: str, name: str = "test_runbook") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def make_run(app: App, runbook: Runbook, *, mode: str = "dry-run", started_at: float | None = None) -> RunRecord:
    start = time.time() if started_at is None else started_at
    inputs = resolve_inputs(runbook, {}, start=start, tz=app.config.timezone, use_examples=True)
    return RunRecord(id=new_run_id("runbook", start), kind="runbook", runbook=runbook.id, source=runbook.source,
                     spec=dict(runbook.raw), config=str(app.config.path), mode=mode, inputs=inputs,
                     state="running", started_at=start)


def runbook_from(tmp_path: Path, text: str) -> Runbook:
    return load_runbook(write_runbook(tmp_path, text))
