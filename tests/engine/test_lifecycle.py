"""Update and cancel: the same channels and recipients, threaded under the original."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from broadcaster.cli import main
from broadcaster.store import Store
from tests.engine.providers import SECRETS, Providers
from tests.support import Reader, read, reopen

DUBAI = ZoneInfo("Asia/Dubai")


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def sql(store: Reader, statement: str, *params: object) -> None:
    read(store.database, lambda s: reopen(s.db, statement, params))


def fire_json(capsys: pytest.CaptureFixture[str], args: list[str]) -> dict[str, object]:
    code = main(args)
    out = capsys.readouterr().out
    assert code == 0, out
    result: dict[str, object] = orjson.loads(out)
    return result


def test_cancel_reaches_every_channel_the_original_reached_threaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=5) as p:
        original = fire_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                                                    as_user="officer"))
        cancel = fire_json(capsys, p.cli("cancel", str(original["alert_id"]), "--live", "--yes", "--json",
                                                  as_user="officer"))
        store = Reader(p.db)
        record = store.alert(str(cancel["alert_id"]))
    assert record.msg_type == "Cancel" and record.references == original["alert_id"]
    assert record.channels == store.alert(str(original["alert_id"])).channels
    # X: each cancel post replies to the original post in the same language.
    first, second = p.x.tweets[:2], p.x.tweets[2:]
    assert [t["reply_to"] for t in second] == [t["id"] for t in first]
    assert "تصحيح" in second[0]["text"] and "Correction" in second[1]["text"]
    # Telegram: a reply to the original message.
    assert p.telegram.sent[1]["reply_to_message_id"] == p.telegram.sent[0]["message_id"]
    # SMS: a follow-up to the same recipients, in their language, once each.
    for phone in p.phones:
        original_sms, cancel_sms = p.twilio.messages_to(phone)
        assert ("تصحيح" in cancel_sms["body"]) == any("\u0600" <= c <= "\u06ff" for c in original_sms["body"])
    # Webhook: the partner is told it is a Cancel that references the original.
    assert p.webhook.deliveries[1].json["msgType"] == "Cancel"
    assert p.webhook.deliveries[1].json["references"] == original["alert_id"]


def test_update_keeps_unchanged_values_and_threads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Providers(tmp_path, recipients=2) as p:
        original = fire_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                                           "--channels", "x-authority", as_user="officer"))
        ends = (datetime.now(DUBAI) + timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
        fire_json(capsys, p.cli("update", str(original["alert_id"]), "--var", f"ends={ends.isoformat()}",
                                "--live", "--yes", "--json", as_user="officer"))
    updated_ar = p.x.tweets[2]["text"]
    assert "شارع الشيخ زايد" in updated_ar and "9:00" in updated_ar
    assert p.x.tweets[2]["reply_to"] == p.x.tweets[0]["id"]


def test_a_cancel_withdraws_what_the_original_has_not_sent_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=3) as p:
        original = fire_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--dry-run", "--json"))
        store = Reader(p.db)
        # Pretend two SMS of the original are still queued (a crash, or a long list).
        sql(store, "UPDATE deliveries SET state = 'pending' WHERE alert_id = ? AND recipient IN (?, ?)",
            original["alert_id"], p.phones[0], p.phones[1])
        cancel = fire_json(capsys, p.cli("cancel", str(original["alert_id"]), "--dry-run", "--json"))
        states = {d.recipient: d.state for d in store.deliveries(str(original["alert_id"])) if d.recipient}
        cancelled_to = {d.recipient for d in store.deliveries(str(cancel["alert_id"])) if d.recipient}
    assert states == {p.phones[0]: "withdrawn", p.phones[1]: "withdrawn", p.phones[2]: "sent"}
    assert cancelled_to == {p.phones[2]}


def test_a_live_follow_up_of_a_rehearsal_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Providers(tmp_path, recipients=1) as p:
        original = fire_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--dry-run", "--json"))
        assert main(p.cli("cancel", str(original["alert_id"]), "--live", "--yes", as_user="officer")) == 2
        assert "dry-run" in capsys.readouterr().err
        assert [f.requests for f in (p.x, p.telegram, p.twilio, p.webhook)] == [[], [], [], []]


def test_rehearsing_the_cancel_of_a_live_alert_leaves_the_live_alert_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=3) as p:
        original = fire_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                                                    as_user="officer"))
        store = Reader(p.db)
        sql(store, "UPDATE deliveries SET state = 'pending' WHERE alert_id = ? AND recipient = ?",
            original["alert_id"], p.phones[0])
        fire_json(capsys, p.cli("cancel", str(original["alert_id"]), "--dry-run", "--json"))
        states = {d.recipient: d.state for d in store.deliveries(str(original["alert_id"])) if d.recipient}
    assert states[p.phones[0]] == "pending"


def test_cli_fires_and_cancels_are_in_the_audit_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from broadcaster.audit import AuditLog, AuditRow

    with Providers(tmp_path, recipients=1) as p:
        original = fire_json(capsys, p.cli("fire", "road_closure", "--use-examples", "--dry-run", "--json"))
        cancel = fire_json(capsys, p.cli("cancel", str(original["alert_id"]), "--dry-run", "--json"))
        assert main(p.cli("audit", "verify")) == 0

        async def every(store: Store) -> list[AuditRow]:
            return [row async for row in AuditLog(store.db).rows()]

        rows = read(str(p.db), every)
    assert [(r.action, orjson.loads(r.detail)["alert_id"]) for r in rows] == [
        ("fire", original["alert_id"]), ("alert_sealed", original["alert_id"]),
        ("cancel", cancel["alert_id"]), ("alert_sealed", cancel["alert_id"])]
    assert [r.actor for r in rows if r.action == "alert_sealed"] == ["broadcaster", "broadcaster"]
    assert all(r.actor.startswith("cli:") for r in rows if r.action != "alert_sealed")
