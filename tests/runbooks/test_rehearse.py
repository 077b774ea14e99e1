"""`broadcaster runbook rehearse`: the real pipeline, dry-run, on a virtual clock, with no socket opened."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.app.rehearse import rehearse
from broadcaster.cli import main
from broadcaster.runbooks.inputs import resolve_inputs
from broadcaster.runbooks.model import load_runbook
from broadcaster.store import Store
from tests.runbooks.conftest import (
    SHIPPED_CHANNELS,
    SHIPPED_RUNBOOKS,
    TEMPLATES,
    Site,
    fast_channels,
    write_runbook,
)
from tests.support import Reader, loaded, read, write_config

HOUR = 3600.0


def cli(tmp_path: Path, *args: str) -> list[str]:
    return ["--config", str(SHIPPED_CHANNELS), "--db", str(tmp_path / "var" / "b.db"), *args]


def rehearse_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code = main(cli(tmp_path, "runbook", "rehearse", *args, "--json"))
    out = capsys.readouterr().out
    assert code == 0, out
    result: dict[str, Any] = orjson.loads(out)
    return result


@pytest.mark.parametrize("shipped", SHIPPED_RUNBOOKS, ids=lambda p: p.stem)
def test_every_shipped_runbook_rehearses_with_no_arguments_and_no_socket(
    shipped: Path, tmp_path: Path, connects: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    result = rehearse_json(tmp_path, capsys, str(shipped))
    assert connects == []
    assert result["steps"] and all(s["state"] == "fired" for s in result["steps"])
    assert all(s["deliveries"] == {"sent": sum(s["deliveries"].values())} for s in result["steps"])
    # Arabic first, then English, in every step's messages.
    for step in result["steps"]:
        languages = [m["language"] for m in step["messages"] if m["channel"] == "x-authority"]
        assert languages == ["ar", "en"]


def test_the_longest_runbook_spans_at_least_12_hours_of_simulated_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = {}
    for shipped in SHIPPED_RUNBOOKS:
        result = rehearse_json(tmp_path, capsys, str(shipped))
        spans[shipped.stem] = result["span_s"]
    longest, span = max(spans.items(), key=lambda item: item[1])
    assert longest == "road_closure_planned"
    assert span >= 12 * HOUR, spans
    assert spans["flood_response"] >= 12 * HOUR


def test_flood_response_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = rehearse_json(tmp_path, capsys, "flood_response", "--input", "area=DXB-HATTA")
    timeline = [(s["step"], s["occurrence"], s["offset_s"] // HOUR, s["msg_type"]) for s in result["steps"]]
    assert timeline == [
        ("watch", 0, 0, "Alert"),
        ("warning", 0, 2, "Update"),
        ("road_closure", 0, 3, "Alert"),
        ("warning", 1, 4, "Update"),
        ("warning", 2, 6, "Update"),
        ("warning", 3, 8, "Update"),
        ("warning", 4, 10, "Update"),
        ("all_clear", 0, 12, "Alert"),
    ]
    confirmed = {s["step"]: s["confirm"] for s in result["steps"] if s["occurrence"] == 0}
    assert confirmed == {"watch": None, "warning": "auto-confirmed", "road_closure": None,
                         "all_clear": "auto-confirmed"}
    sms = [m for m in result["steps"][0]["messages"] if m["kind"] == "sms"]
    assert sms and all(m["segments"] >= 1 and "cost_segments" in m for m in sms)
    ar = next(m["text"] for m in result["steps"][1]["messages"] if m["channel"] == "x-authority")
    assert ar.startswith("تحديث: \u2067تحذير من خطر السيول\u2069")  # the update escalated watch -> warning, and says so
    # Its repeats say the same again: reminders, counted.
    firsts = [next(m["text"] for m in s["messages"] if m["channel"] == "x-authority" and m["language"] == "en")
              for s in result["steps"] if s["step"] == "warning"]
    assert [t.split(": ")[0] for t in firsts] == ["Update", "First reminder", "Second reminder", "Third reminder",
                                                  "Fourth reminder"]


def test_the_earthquake_advice_repeats_as_counted_reminders_not_as_new_quakes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = rehearse_json(tmp_path, capsys, "earthquake_response")
    advice = [s for s in result["steps"] if s["step"] == "aftershock_advice"]
    assert len(advice) >= 2

    def texts(step: dict[str, Any], kind: str, language: str) -> list[str]:
        return [m["text"] for m in step["messages"] if m["kind"] == kind and m["language"] == language]

    ordinals_ar = ["الأول", "الثاني", "الثالث", "الرابع", "الخامس", "السادس"]
    ordinals_en = ["First", "Second", "Third", "Fourth", "Fifth", "Sixth"]
    for n, step in enumerate(advice):
        assert texts(step, "x", "ar") and texts(step, "sms", "en")
        for kind in ("x", "sms"):
            assert all(t.startswith(f"التذكير {ordinals_ar[n]}: زلزال بقوة") for t in texts(step, kind, "ar"))
            assert all(t.startswith(f"{ordinals_en[n]} reminder: A magnitude") for t in texts(step, kind, "en"))
    # The alert itself is not marked.
    assert all(t.startswith("زلزال بقوة") for t in texts(result["steps"][0], "x", "ar"))


def test_a_rehearsal_is_logged_under_its_own_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = rehearse_json(tmp_path, capsys, "earthquake_response")
    run_id = result["run_id"]
    assert main(cli(tmp_path, "log", run_id, "--json")) == 0
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    alerts = {s["alert_id"] for s in result["steps"]}
    assert {line["alert_id"] for line in lines} == alerts
    assert {line["run_id"] for line in lines} == {run_id}
    assert {line["outcome"] for line in lines} == {"sent"}
    assert main(cli(tmp_path, "log", run_id)) == 0
    text = capsys.readouterr().out
    assert run_id in text and "aftershock_advice" in text and "finished" in text
    # Each alert of the run is an ordinary alert too.
    assert main(cli(tmp_path, "log", result["steps"][0]["alert_id"], "--json")) == 0


def test_inputs_override_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = rehearse_json(tmp_path, capsys, "earthquake_response", "--input", "magnitude=6.1",
                           "--input", "area=DXB-MARINA")
    assert result["inputs"]["magnitude"] == {"ar": "6.1", "en": "6.1"}
    en = next(m["text"] for m in result["steps"][0]["messages"] if m["channel"] == "x-authority"
              and m["language"] == "en")
    assert "magnitude \u20666.1\u2069" in en and "\u2066Dubai Marina\u2069" in en


def test_a_bad_input_is_refused_before_anything_fires(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(cli(tmp_path, "runbook", "rehearse", "earthquake_response", "--input", "magnitude=11"))
    assert code == 2
    assert "outside 0 to 10" in capsys.readouterr().err
    assert Reader(tmp_path / "var" / "b.db").runs() == []


def test_the_human_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(tmp_path, "runbook", "rehearse", "flood_response")) == 0
    out = capsys.readouterr().out
    assert "DRY-RUN" in out and "auto-confirmed" in out and "+12h" in out
    assert "تنبيه من خطر السيول" in out and "Flood watch for Hatta" in out
    assert "nothing left this machine" in out and "broadcaster log run-" in out


def test_warnings_near_limit_uncovered_area_and_empty_list(tmp_path: Path) -> None:
    channels = fast_channels(tmp_path)
    channels[0]["areas"] = ["DXB-MARINA"]  # x-authority covers one area only
    channels.append({"id": "sms-deira", "kind": "sms", "account_sid_env": "TWILIO_ACCOUNT_SID",
                     "auth_token_env": "TWILIO_AUTH_TOKEN", "from": "+15005550006", "recipients": "deira.csv",
                     "max_segments": 4})  # the verification line included
    (tmp_path / "deira.csv").write_text("phone,language,area\n+971501000101,ar,DXB-DEIRA\n", encoding="utf-8")
    files = loaded(write_config(tmp_path, channels, templates=str(TEMPLATES), database="var/test.db"))
    text = """
name = { ar = "اختبار", en = "Test" }
[[steps]]
id = "closure"
template = "road_closure"
channels = "x-authority,sms-deira"
vars.road = "E11"
vars.reason = "maintenance"
vars.starts = "{now}"
vars.ends = "{now+7h}"
vars.detour = { ar = "شارع الخيل وشارع الإمارات", en = "Al Khail Road and Emirates Road" }
"""
    runbook = load_runbook(write_runbook(tmp_path, text))
    result = rehearse(files.config, files.catalogue, str(tmp_path / "var" / "test.db"), runbook, {})
    (entry,) = result.entries
    warnings = entry.fired.warnings
    assert any("sms-deira (ar)" in w and "only just fits" in w for w in warnings), warnings
    assert any("reaches area DXB-DOWNTOWN" in w for w in warnings), warnings
    assert not any("reaches area DXB-MARINA" in w for w in warnings), warnings
    assert any(w.startswith("sms-deira: no recipient") for w in warnings), warnings


def test_cancel_and_update_steps_follow_up_the_original(tmp_path: Path, fast: Site) -> None:
    text = """
name = { ar = "اختبار", en = "Test" }
[[inputs]]
name = "road"
example = "E11"
[[steps]]
id = "closure"
template = "road_closure"
vars.road = "{input:road}"
vars.reason = "accident"
vars.starts = "{now}"
vars.ends = "{now+2h}"
vars.detour = { ar = "شارع الخيل", en = "Al Khail Road" }
[[steps]]
id = "extend"
update = "closure"
after = "30m"
vars = { ends = "{now+3h}" }
[[steps]]
id = "mistake"
cancel = "closure"
after = "5m"
"""
    runbook = load_runbook(write_runbook(tmp_path, text))
    inputs = resolve_inputs(runbook, {}, start=time.time(), tz=fast.config.timezone, use_examples=True)
    result = rehearse(fast.config, fast.catalogue, fast.database, runbook, inputs)
    closure, extend, cancel = (e.fired for e in result.entries)
    assert [f.state for f in (closure, extend, cancel)] == ["fired"] * 3
    assert extend.plan is not None and cancel.plan is not None and closure.alert_id is not None
    assert extend.plan.alert.msg_type == "Update" and extend.plan.alert.references == closure.alert_id
    assert cancel.plan.alert.msg_type == "Cancel" and cancel.plan.alert.references == closure.alert_id
    assert cancel.time - closure.time == pytest.approx(35 * 60, abs=5)
    # The update threads under the original on X: every post replies to the original's post.
    deliveries = fast.reader.deliveries(extend.plan.alert.id)
    assert deliveries and all(d.state == "sent" for d in deliveries)
    update_id, original_id = extend.plan.alert.id, closure.alert_id

    async def threading(store: Store) -> tuple[list[str | None], set[str]]:
        replies = await store.db.execute(
            "SELECT reply_to FROM deliveries WHERE alert_id = ? AND channel_id = 'x-authority'", (update_id,))
        return [r["reply_to"] for r in replies.rows], set((await store.alerts.provider_ids(original_id)).values())

    reply_to, originals = read(fast.database, threading)
    assert reply_to and set(reply_to) <= originals


def test_a_repeat_stops_when_its_until_time_comes(tmp_path: Path, fast: Site) -> None:
    text = """
name = { ar = "اختبار", en = "Test" }
[[steps]]
id = "storm"
template = "dust_storm"
every = "2h"
until = "{input:ends}"
vars = { area = "DXB", until = "{input:ends}", visibility = "500" }
[[inputs]]
name = "ends"
type = "datetime"
example = "+7h"
"""
    runbook = load_runbook(write_runbook(tmp_path, text))
    start = time.time()
    inputs = resolve_inputs(runbook, {}, start=start, tz=fast.config.timezone, use_examples=True)
    result = rehearse(fast.config, fast.catalogue, fast.database, runbook, inputs, start=start)
    offsets = [round((e.fired.time - start) / HOUR) for e in result.entries]
    assert offsets == [0, 2, 4, 6]
    assert [e.fired.plan.alert.msg_type for e in result.entries if e.fired.plan] == ["Alert"] + ["Update"] * 3


def test_the_rehearsal_cli_rejects_a_broken_runbook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_runbook(tmp_path, SHIPPED_RUNBOOKS[0].read_text(encoding="utf-8").replace(
        'template = "earthquake"', 'template = "earthquak"'))
    assert main(cli(tmp_path, "runbook", "rehearse", str(path))) == 2
    assert "unknown template 'earthquak'" in capsys.readouterr().err
