"""A cell broadcast thread through the real CLI: fire, update, update, cancel, against a fake osmo-cbc ECBE.

The outbox builds each CBS body at commit time from the thread (its first alert and its place in it), so a
follow-up replaces the message on phones (same identifier and message code, the next update number) and a
cancel withdraws it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from broadcaster.channels import cbs_levels
from broadcaster.cli import main
from tests.engine.providers import SECRETS, Providers
from tests.fakes.cbc import FakeCbc

DUBAI = ZoneInfo("Asia/Dubai")
CBC = "cbc-national"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def fire_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict[str, Any]:
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    result: dict[str, Any] = orjson.loads(out)
    return result


class WithCbc(Providers):
    """The usual fakes, plus a FakeCbc and one cell_broadcast channel pointing at it."""

    def __init__(self, tmp_path: Path) -> None:
        self.cbc = FakeCbc()
        super().__init__(tmp_path, recipients=1, extra_channels=self._channel)

    def _channel(self, p: Providers) -> list[dict[str, Any]]:
        p.call(self.cbc.start())
        return [{"id": CBC, "kind": "cell_broadcast", "api_base": self.cbc.base_url, "cbe_name": "alerts.example.gov",
                 "scopes": {"DXB-HATTA": "plmn", "DXB": "plmn"}, "rate_per_second": 50}]

    def __exit__(self, *exc: object) -> None:
        self.call(self.cbc.stop())
        super().__exit__(*exc)


def test_fire_update_and_cancel_replace_then_withdraw_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    until = (datetime.now(DUBAI) + timedelta(hours=9)).replace(second=0, microsecond=0).isoformat()
    with WithCbc(tmp_path) as p:
        first = fire_json(capsys, p.cli("fire", "flood_warning", "--use-examples", "--channels", CBC, "--live",
                                        "--yes", "--json", as_user="officer"))
        root = str(first["alert_id"])
        update = fire_json(capsys, p.cli("update", root, "--var", f"until={until}", "--live", "--yes", "--json",
                                         as_user="officer"))
        fire_json(capsys, p.cli("update", str(update["alert_id"]), "--var", "level=severe", "--live", "--yes",
                                "--json", as_user="officer"))
        fire_json(capsys, p.cli("cancel", root, "--live", "--yes", "--json", as_user="officer"))
        cbc = p.cbc

    code = cbs_levels.msg_code(root)
    # Severe / Expected / Likely: 4378 in Arabic, 4391 in English; each version once, the update number counting.
    assert sorted(cbc.seen_by_phones()) == sorted((mid, code, n) for mid in (4378, 4391) for n in (0, 1, 2))
    texts = [m.text for m in cbc.history if m.language == "ar"]
    assert texts[0].startswith("ابتعدوا عن الأودية") and texts[1].startswith("تحديث: ابتعدوا")
    assert "تحذير شديد من خطر السيول" in texts[2]
    # Two updates withdrew and re-created each identifier; the cancel withdrew them for good.
    assert sorted(r.path.rsplit("/", 1)[1] for r in cbc.requests if r.method == "DELETE") == ["4378"] * 3 + ["4391"] * 3
    assert cbc.messages == {}


def test_an_exercise_goes_out_under_the_exercise_identifiers(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with WithCbc(tmp_path) as p:
        text = p.config.read_text(encoding="utf-8")
        p.config.write_text(text.replace('id = "cbc-national"', 'id = "cbc-national"\nexercise = true'),
                            encoding="utf-8")
        fire_json(capsys, p.cli("fire", "flood_warning", "--use-examples", "--channels", CBC, "--exercise",
                                "--yes", "--json", as_user="officer"))
        cbc = p.cbc
    assert sorted(m.message_id for m in cbc.history) == [4381, 4394]
    assert all(m.text.startswith(("[تمرين] ", "[EXERCISE] ")) for m in cbc.history)


def test_an_area_without_a_scope_stops_the_fire_before_anything_is_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with WithCbc(tmp_path) as p:
        code = main(p.cli("fire", "flood_warning", "--use-examples", "--area", "DXB-MARINA", "--channels", CBC,
                          "--live", "--yes", as_user="officer"))
        err = capsys.readouterr().err
        cbc = p.cbc
    assert code == 2
    assert "DXB-MARINA" in err and "'cbc-national'" in err
    assert cbc.requests == []
