"""A fire refuses to start while this host's clock disagrees with the database's (finding 6).

The host clock is made slow by replacing ``time.time``; the database keeps its own
(SQLite's ``julianday('now')`` and PostgreSQL's ``clock_timestamp()`` do not read it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.app.context import open_app
from broadcaster.app.fire import Request, plan_request
from broadcaster.channels.registry import KINDS
from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.errors import ConfigError
from broadcaster.states import Mode
from broadcaster.store import upgrade_database
from tests.engine.providers import REPO, SECRETS, Providers
from tests.service.support import provider_requests, serving
from tests.support import Reader, write_config

DAY = 86400.0
REAL_TIME = time.time


def host_clock(monkeypatch: pytest.MonkeyPatch, offset_s: float) -> None:
    monkeypatch.setattr(time, "time", lambda: REAL_TIME() + offset_s)


@pytest.fixture
def providers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Providers]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with Providers(tmp_path, recipients=2) as p:
        yield p


def test_a_live_fire_from_a_host_three_days_slow_is_refused_with_exit_2(
    providers: Providers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    host_clock(monkeypatch, -3 * DAY)
    assert main(providers.cli("fire", "road_closure", "--use-examples", "--live", "--yes", as_user="officer")) == 2
    err = capsys.readouterr().err
    assert "this host's clock" in err and "behind the database's" in err and "max_clock_skew_s = 60" in err
    assert "nothing was sent" in err
    assert provider_requests(providers) == [0, 0, 0, 0]
    assert Reader(providers.db).alerts() == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_skew_is_measured_against_the_database_clock(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    database = str(tmp_path / "skew.db")
    if backend == "postgresql":
        database = request.getfixturevalue("pg_url")
        await upgrade_database(database)
    config = write_config(tmp_path, [{"id": "hook", "kind": "webhook", "url": "https://partner.example/alerts",
                                      "secret_env": "PARTNER_HOOK_SECRET"}], templates=str(REPO / "templates"),
                          max_clock_skew_s=20)
    asked = Request("fire", Mode.DRY_RUN, template="road_closure", inputs={})
    async with open_app(str(config), database) as app:
        for offset in (-DAY, -21.0, 21.0, 3 * DAY):
            host_clock(monkeypatch, offset)
            with pytest.raises(ConfigError, match="max_clock_skew_s = 20") as caught:
                await plan_request(app, asked, now=time.time(), created_by="t")
            assert ("ahead of" if offset > 0 else "behind") in str(caught.value)
        host_clock(monkeypatch, -5.0)  # within the bound: the fire is planned (and fails only on its inputs)
        with pytest.raises(Exception, match="missing required variables: road, "):
            await plan_request(app, asked, now=time.time(), created_by="t")


async def test_over_http_a_skewed_host_is_the_servers_fault_a_503_and_nothing_is_sent(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(providers) as api:
        host_clock(monkeypatch, -3 * DAY)
        status, body = await api.fire("officer", mode="live")
        assert status == 503 and "this host's clock" in body["message"], body
        assert provider_requests(providers) == [0, 0, 0, 0]
        assert await api.app.store.alerts.recent() == []


@pytest.mark.parametrize("value", [0, -1, 4000, '"60"', "true"])
def test_max_clock_skew_s_must_be_a_sensible_number_of_seconds(tmp_path: Path, value: object,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, [{"id": "hook", "kind": "webhook", "url": "https://partner.example/alerts",
                                      "secret_env": "PARTNER_HOOK_SECRET"}], templates=str(REPO / "templates"))
    plain = config.read_text()
    config.write_text(plain.replace("[broadcaster]\n", "[broadcaster]\nmax_clock_skew_s = 30\n"))
    assert load_config(config, KINDS).max_clock_skew_s == 30.0
    config.write_text(plain.replace("[broadcaster]\n", f"[broadcaster]\nmax_clock_skew_s = {value}\n"))
    assert main(["--config", str(config), "channels", "check", "--dry-run"]) == 2
    assert "key 'max_clock_skew_s': must be a number of seconds" in capsys.readouterr().err
