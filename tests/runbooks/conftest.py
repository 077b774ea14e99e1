"""Builders for runbook tests: a fast test config, runbook files, and runs."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broadcaster.app.context import App, open_app
from broadcaster.config import Config
from broadcaster.runbooks.ids import new_run_id
from broadcaster.runbooks.inputs import resolve_inputs
from broadcaster.runbooks.model import Runbook, load_runbook
from broadcaster.states import Mode, RunKind, RunState
from broadcaster.store.records import RunRecord
from broadcaster.templates.catalogue import Catalogue
from tests.engine.providers import write_recipients
from tests.support import Loaded, Reader, loaded, write_config

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

# One road closure step, due AFTER the run starts (see closure()).
CLOSURE = """
name = { ar = "اختبار", en = "Test" }
[[steps]]
id = "closure"
template = "road_closure"
channels = "x-authority,telegram-authority"
after = "AFTER"
vars.road = "E11"
vars.reason = "accident"
vars.starts = "{now}"
vars.ends = "{now+2h}"
vars.detour = { ar = "شارع الخيل", en = "Al Khail Road" }
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


@dataclass(frozen=True)
class Site:
    """A checked channels.toml and its catalogue over one database, nothing opened.

    Synchronous tests drive the CLI (``site.cli(...)``) and read with
    ``site.reader``; async tests open the store on their own loop with
    ``async with site.open() as app``.
    """

    config: Config
    catalogue: Catalogue
    database: str

    def cli(self, *args: str) -> list[str]:
        return ["--config", str(self.config.path), "--db", self.database, *args]

    @property
    def reader(self) -> Reader:
        return Reader(self.database)

    def open(self) -> AbstractAsyncContextManager[App]:
        return open_app(str(self.config.path), self.database)


@pytest.fixture
def shipped_config() -> Loaded:
    """The shipped channels.toml and catalogue (no database)."""
    return loaded(SHIPPED_CHANNELS)


@pytest.fixture
def fast(tmp_path: Path) -> Site:
    config = write_config(tmp_path, fast_channels(tmp_path), templates=str(TEMPLATES), database="var/test.db")
    checked = loaded(config)
    return Site(checked.config, checked.catalogue, str(tmp_path / "var" / "test.db"))


@pytest.fixture
async def fast_app(fast: Site) -> AsyncIterator[App]:
    """The fast site with its store open on the test's own event loop."""
    async with fast.open() as app:
        yield app


def write_runbook(tmp_path: Path, text: str, name: str = "test_runbook") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def make_run(config: Config, runbook: Runbook, *, mode: Mode = Mode.DRY_RUN,
             started_at: float | None = None) -> RunRecord:
    start = time.time() if started_at is None else started_at
    inputs = resolve_inputs(runbook, {}, start=start, tz=config.timezone, use_examples=True)
    return RunRecord(id=new_run_id(RunKind.RUNBOOK, start), kind=RunKind.RUNBOOK, runbook=runbook.id,
                     source=runbook.source, spec=dict(runbook.raw), config=str(config.path), mode=mode,
                     inputs=inputs, state=RunState.RUNNING, started_at=start)


def runbook_from(tmp_path: Path, text: str) -> Runbook:
    return load_runbook(write_runbook(tmp_path, text))


def closure(tmp_path: Path, after: str = "0s", text: str = CLOSURE) -> Runbook:
    return runbook_from(tmp_path, text.replace("AFTER", after))


def dead_owner() -> str:
    """A lease owner tag naming a process on this host that does not exist."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"{os.uname().nodename}:{pid}:gone"
        except PermissionError:
            pass
        pid += 1
