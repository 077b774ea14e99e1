"""Telegram with on_unknown = "hold": a timed-out post waits for an operator, who releases it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from broadcaster.audit import AuditLog
from broadcaster.cli import main
from tests.engine.providers import REPO, SECRETS, Providers
from tests.fakes.telegram import FakeTelegram
from tests.support import Reader, read, write_config


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def fire_with_a_lost_post(p: Providers, *, accept: bool) -> str:
    p.telegram.script(FakeTelegram.hang(3.0, accept=accept))  # past the channel's 1 s timeout
    assert main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                      "--channels", "telegram-authority", as_user="officer")) == 1  # not everything went out
    (alert,) = Reader(p.db).alerts()
    return alert.id


@pytest.mark.parametrize("accept", [False, True])
def test_a_held_post_is_listed_and_released_by_an_operator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], accept: bool
) -> None:
    with Providers(tmp_path) as p:
        channels = p.default_channels()
        for channel in channels:
            if channel["kind"] == "telegram":
                channel.update(on_unknown="hold", timeout_s=1.0)
        write_config(tmp_path, channels, templates=str(REPO / "templates"), database="var/broadcaster.db")
        alert_id = fire_with_a_lost_post(p, accept=accept)
        capsys.readouterr()
        assert main(p.cli("held", "--json")) == 0
        (row,) = orjson.loads(capsys.readouterr().out)
        assert (row["alert_id"], row["channel"]) == (alert_id, "telegram-authority")
        if accept:  # the operator sees the post on the channel
            assert main(p.cli("release", alert_id, "--channel", "telegram-authority", "--mark-sent", "--yes")) == 0
        else:  # the operator sees nothing: send again
            assert main(p.cli("release", alert_id, "--channel", "telegram-authority", "--resend", "--yes")) == 0
            assert main(p.cli("resume")) == 0
        assert len(p.telegram.sent) == 1  # exactly one post, either way
        store = Reader(p.db)
        assert store.state_counts(alert_id) == {"telegram-authority": {"sent": 1}}
        assert store.held() == []
        (audit,) = read(store.database, lambda s: AuditLog(s.db).tail("release_held"))
        assert '"decision":"' + ("mark_sent" if accept else "resend") + '"' in audit.detail


def test_release_names_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Providers(tmp_path) as p:
        assert main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                          "--channels", "telegram-authority", as_user="officer")) == 0
        (alert,) = Reader(p.db).alerts()
        capsys.readouterr()
        assert main(p.cli("release", alert.id, "--channel", "telegram-authority", "--resend", "--yes")) == 2
        assert "no held deliveries on channel 'telegram-authority'" in capsys.readouterr().err
