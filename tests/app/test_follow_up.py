"""Follow-ups say what they are: an update is marked on every channel, a cancel says why, an all-clear names
what is over and reaches the original's audience (broadcaster.app.follow_up)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from broadcaster.cli import main
from tests.engine.providers import SECRETS, Providers
from tests.support import Reader

DUBAI = ZoneInfo("Asia/Dubai")
ARABIC = range(0x0600, 0x0700)


def plain(text: str) -> str:
    """``text`` without its bidi isolates (each value sits in one), as a reader sees its words."""
    return re.sub("[\u2066-\u2069]", "", text)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def run_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict[str, Any]:
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    result: dict[str, Any] = orjson.loads(out)
    return result


def is_arabic(text: str) -> bool:
    return any(ord(c) in ARABIC for c in text)


def later(days: int, hour: int) -> str:
    return (datetime.now(DUBAI) + timedelta(days=days)).replace(hour=hour, minute=0, second=0,
                                                                microsecond=0).isoformat()


def closure(p: Providers, capsys: pytest.CaptureFixture[str], *extra: str, road: str = "E11") -> str:
    result = run_json(capsys, p.cli("fire", "road_closure", "--var", f"road={road}", "--var", "reason=maintenance",
                                    "--var", f"starts={later(1, 22)}", "--var", f"ends={later(2, 5)}",
                                    "--var", "detour.ar=شارع الخيل", "--var", "detour.en=Al Khail Road",
                                    "--live", "--yes", "--json", *extra, as_user="officer"))
    return str(result["alert_id"])


def test_an_update_says_so_first_in_both_languages_on_every_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=3, extra_channels=lambda p: [p.email_channel()]) as p:
        original = closure(p, capsys)
        before = {"x": len(p.x.tweets), "telegram": len(p.telegram.sent), "webhook": len(p.webhook.deliveries),
                  "email": len(p.smtp.messages)}
        run_json(capsys, p.cli("update", original, "--var", f"ends={later(2, 9)}", "--live", "--yes", "--json",
                               as_user="officer"))
    # X: each language's post starts with its marker.
    ar, en = (t["text"] for t in p.x.tweets[before["x"]:])
    assert ar.startswith("تحديث: ") and en.startswith("Update: ")
    assert not p.x.tweets[0]["text"].startswith("تحديث")  # the original was not marked
    # Telegram: the bold headline is marked in each language.
    (message,) = p.telegram.sent[before["telegram"]:]
    assert message["text"].startswith("<b>تحديث: ") and "Update: " in message["text"]
    # ... once: the headline shows it, the text under it does not say it again.
    assert message["text"].count("تحديث: ") == 1 and message["text"].count("Update: ") == 1
    # SMS: every recipient's follow-up, in their language.
    for phone in p.phones:
        first, update = (m["body"] for m in p.twilio.messages_to(phone))
        assert update.startswith("تحديث: " if is_arabic(first) else "Update: ")
    # The partner's JSON: every form of both languages.
    info = p.webhook.deliveries[before["webhook"]].json["info"]
    assert all(form.startswith({"ar": "تحديث: ", "en": "Update: "}[i["language"]])
               for i in info for key, form in i.items() if key in ("headline", "short", "long"))
    # Email: the subject is the marked headline(s).
    subjects = {str(m.message["Subject"]) for m in p.smtp.messages[before["email"]:]}
    assert subjects and all(s.startswith(("تحديث: ", "Update: ")) for s in subjects)


def test_an_exercise_update_keeps_the_exercise_marker_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=1, channel_options={"exercise": True}) as p:
        original = run_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--exercise", "--json"))
        run_json(capsys, p.cli("update", str(original["alert_id"]), "--var", f"ends={later(2, 9)}", "--exercise",
                               "--json"))
    assert [t["text"].split(" ", 2)[:2] for t in p.x.tweets[2:]] == [["[تمرين]", "تحديث:"], ["[EXERCISE]", "Update:"]]


def test_a_call_off_never_says_sent_in_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Providers(tmp_path, recipients=3) as p:
        original = closure(p, capsys)
        called_off = run_json(capsys, p.cli("cancel", original, "--reason", "called_off", "--live", "--yes",
                                            "--json", as_user="officer"))
        record = Reader(p.db).alert(str(called_off["alert_id"]))
    assert record.template == "call_off" and record.msg_type == "Cancel" and record.references == original
    ar, en = (plain(t["text"]) for t in p.x.tweets[2:])
    assert ar.startswith("تنويه: تم إلغاء إغلاق الطريق المعلن عنه يوم ") and "has been called off" in en
    texts = [ar, en, *(m["body"] for phone in p.phones for m in p.twilio.messages_to(phone)[1:])]
    assert all("بالخطأ" not in t and "نعتذر" not in t and "in error" not in t for t in texts)
    assert p.x.tweets[2]["reply_to"] == p.x.tweets[0]["id"]


def test_a_cancel_for_error_is_still_the_correction(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Providers(tmp_path, recipients=1) as p:
        original = closure(p, capsys)
        run_json(capsys, p.cli("cancel", original, "--reason", "error", "--live", "--yes", "--json",
                               as_user="officer"))
    assert "أُرسل بالخطأ" in p.x.tweets[2]["text"] and "sent in error" in p.x.tweets[3]["text"]


def test_an_earthquake_cannot_be_called_off(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Providers(tmp_path, recipients=1) as p:
        original = run_json(capsys, p.cli("fire", "earthquake", "--use-examples", "--dry-run", "--json"))
        sent = len(p.x.tweets)
        code = main(p.cli("cancel", str(original["alert_id"]), "--reason", "called_off", "--dry-run"))
        err = capsys.readouterr().err
    assert code == 2 and "--reason error" in err and "call_off" in err
    assert len(p.x.tweets) == sent


def test_a_reopened_road_is_named_and_reaches_exactly_the_closures_audience(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=9) as p:
        # Jumeirah Street runs through DXB-JUMEIRAH only: a third of the residents.
        original = closure(p, capsys, road="JUMEIRAH-ST")
        reopened = run_json(capsys, p.cli("all-clear", original, "--live", "--yes", "--json", as_user="officer"))
        store = Reader(p.db)
        record = store.alert(str(reopened["alert_id"]))
        closed_to = {d.recipient for d in store.deliveries(original) if d.recipient}
        reopened_to = {d.recipient for d in store.deliveries(str(reopened["alert_id"])) if d.recipient}
        closure_channels = store.alert(original).channels
    assert record.template == "road_reopened" and record.references == original and record.msg_type == "Update"
    assert record.channels == closure_channels
    assert reopened_to == closed_to and len(closed_to) == 3
    ar, en = (plain(t["text"]) for t in p.x.tweets[2:])
    assert ar.startswith("إعادة فتح شارع جميرا") and en.startswith("Jumeirah Street has reopened")
    assert p.x.tweets[2]["reply_to"] == p.x.tweets[0]["id"]


def test_an_all_clear_after_an_alert_keeps_its_area_and_audience(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=9) as p:
        warning = run_json(capsys, p.cli("fire", "flood_warning", "--var", "level=warning", "--var",
                                         "area=DXB-MARINA", "--var", f"until={later(1, 6)}", "--dry-run", "--json"))
        clear = run_json(capsys, p.cli("all-clear", str(warning["alert_id"]), "--dry-run", "--json"))
        ten_minutes_ago = (datetime.now(DUBAI) - timedelta(minutes=10)).isoformat(timespec="seconds")
        # Fired on its own, the all-clear of the whole emirate reaches everyone on the list.
        emirate = run_json(capsys, p.cli("fire", "all_clear", "--var", "event=flood", "--var", "area=DXB",
                                         "--var", f"ended={ten_minutes_ago}", "--dry-run", "--json"))
        store = Reader(p.db)
        record = store.alert(str(clear["alert_id"]))

        def phones(alert_id: object) -> set[str]:
            return {d.recipient for d in store.deliveries(str(alert_id)) if d.recipient}

    assert record.template == "all_clear" and record.areas == ("DXB-MARINA",)
    assert phones(clear["alert_id"]) == phones(warning["alert_id"]) and len(phones(warning["alert_id"])) == 3
    assert len(phones(emirate["alert_id"])) == 9
    assert plain(record.forms["en"]["headline"]) == "All clear: the flood warning in Dubai Marina has ended"
    assert record.references == warning["alert_id"]


def test_preview_of_an_update_and_a_cancel_shows_every_channels_text_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], connects: list[Any]
) -> None:
    with Providers(tmp_path, recipients=3) as p:
        original = closure(p, capsys)
        store = Reader(p.db)
        alerts = len(store.alerts())
        requests = [len(f.requests) for f in (p.x, p.telegram, p.twilio, p.webhook)]
        update = run_json(capsys, p.cli("preview", "--update", original, "--var", f"ends={later(2, 9)}", "--json"))
        called_off = run_json(capsys, p.cli("preview", "--cancel", original, "--reason", "called_off", "--json"))
        reopened = run_json(capsys, p.cli("preview", "--all-clear", original, "--json"))
        assert main(p.cli("preview", "--update", original, "--var", f"ends={later(2, 9)}")) == 0
        table = capsys.readouterr().out
        assert len(store.alerts()) == alerts
    assert [len(f.requests) for f in (p.x, p.telegram, p.twilio, p.webhook)] == requests
    assert {m["channel"] for m in update["messages"]} == {"x-authority", "telegram-authority", "sms-residents",
                                                          "partner-hook"}
    for message in update["messages"]:
        assert message["text"].lstrip("<b>").startswith(("تحديث: ", "Update: ")), message
    assert update["references"] == original and called_off["template"] == "call_off"
    assert reopened["template"] == "road_reopened"
    assert "تحديث: " in table and "Update: " in table


def test_a_dry_run_update_with_log_prints_its_texts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Providers(tmp_path, recipients=1) as p:
        original = run_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--dry-run", "--json"))
        assert main(p.cli("update", str(original["alert_id"]), "--var", f"ends={later(2, 9)}", "--dry-run",
                          "--log")) == 0
        update_out = capsys.readouterr().out
        assert main(p.cli("cancel", str(original["alert_id"]), "--reason", "called_off", "--dry-run",
                          "--log")) == 0
        cancel_out = capsys.readouterr().out
    assert "تحديث: " in update_out and "Update: " in update_out
    assert "has been called off" in cancel_out and "تم إلغاء" in cancel_out


def test_whatsapp_previews_what_its_registered_template_really_sends_and_says_it_carries_no_marker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=2, extra_channels=lambda p: [p.whatsapp_channel()]) as p:
        original = closure(p, capsys)
        ends = later(2, 9)
        preview = run_json(capsys, p.cli("preview", "--update", original, "--var", f"ends={ends}", "--json"))
        code = main(p.cli("update", original, "--var", f"ends={ends}", "--live", "--yes", "--json",
                          as_user="officer"))
        err = capsys.readouterr().err
    assert code == 0, err
    assert any("'whatsapp-residents'" in note and "تحديث: / Update:" in note for note in preview["notes"])
    assert "note: channel 'whatsapp-residents'" in err
    previewed = {m["language"]: m["text"] for m in preview["messages"] if m["channel"] == "whatsapp-residents"}
    for phone in p.phones:
        first, update = (m["body"] for m in p.twilio.messages_to("whatsapp:" + phone))
        language = "ar" if is_arabic(first) else "en"
        assert update == previewed[language]  # a subscriber reads exactly the previewed text
    # Every other channel's preview is marked.
    assert all(m["text"].removeprefix("<b>").startswith(("تحديث: ", "Update: ")) for m in preview["messages"]
               if m["channel"] != "whatsapp-residents")
