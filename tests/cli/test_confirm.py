"""Two-person alerts from the command line: a live earthquake waits for ``broadcaster confirm`` by a different
officer, with the same rules as ``POST /api/alerts/{id}/confirm``."""

from __future__ import annotations

import io
import time
from typing import Any

import orjson
import pytest

from broadcaster.audit import AuditLog, AuditRow
from broadcaster.cli import main
from broadcaster.store.pending import AWAITING, CONFIRMED, PendingFire
from tests.cli.conftest import sent_anything
from tests.engine.providers import Providers
from tests.support import read


def pending(p: Providers, alert_id: str) -> PendingFire | None:
    return read(str(p.db), lambda s: s.pending.get(alert_id))


def audit(p: Providers, action: str) -> list[AuditRow]:
    return read(str(p.db), lambda s: AuditLog(s.db).tail(action))


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def fire_quake(p: Providers, capsys: pytest.CaptureFixture[str], user: str = "officer") -> str:
    code, out, err = run(capsys, p.cli("fire", "earthquake", "--use-examples", "--live", "--yes", "--json",
                                       as_user=user))
    assert code == 0, err
    held = orjson.loads(out)
    assert held["state"] == "awaiting_confirmation" and held["deliveries"] == []
    return str(held["alert_id"])


@pytest.mark.parametrize("template", ["earthquake", "road_closure"])
def test_a_live_fire_without_a_token_is_refused_and_reaches_no_provider(
    p: Providers, capsys: pytest.CaptureFixture[str], template: str
) -> None:
    code, _, err = run(capsys, p.cli("fire", template, "--use-examples", "--live", "--yes"))
    assert code == 2
    assert "BROADCASTER_TOKEN" in err and "--token-file" in err and "broadcaster users add" in err
    assert "nothing was sent" in err
    assert not sent_anything(p)
    assert read(str(p.db), lambda s: s.alerts.recent()) == []
    assert read(str(p.db), lambda s: s.pending.recent()) == []


def test_an_officers_earthquake_waits_until_a_different_officer_confirms_it(
    p: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    alert_id = fire_quake(p, capsys)
    assert not sent_anything(p)
    (fired,) = audit(p, "fire")
    assert fired.actor == "officer" and orjson.loads(fired.detail)["state"] == AWAITING

    # The officer who fired may not confirm it; a viewer or operator may not confirm at all; nor may nobody.
    code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes", as_user="officer"))
    assert code == 2 and "a different officer must confirm it" in err
    for user in ("viewer", "operator"):
        code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes", as_user=user))
        assert code == 2 and "needs the officer or approver role" in err, err
    code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes"))
    assert code == 2 and "BROADCASTER_TOKEN" in err
    assert not sent_anything(p)
    waiting = pending(p, alert_id)
    assert waiting is not None and waiting.state == AWAITING
    assert sorted(orjson.loads(r.detail)["role"] for r in audit(p, "forbidden")) == ["operator", "viewer"]

    # A second officer releases it: delivered here, reported as fire --json reports.
    code, out, err = run(capsys, p.cli("confirm", alert_id, "--yes", "--json", as_user="officer2"))
    assert code == 0, err
    result = orjson.loads(out)
    assert result["alert_id"] == alert_id and result["mode"] == "live"
    assert {d["state"] for d in result["deliveries"]} == {"sent"}
    assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)
    assert len(p.x.tweets) == 2 and len(p.telegram.sent) == 1
    assert {d.json["alert_id"] for d in p.webhook.deliveries} == {alert_id}
    done = pending(p, alert_id)
    assert done is not None and (done.state, done.requested_by, done.confirmed_by) == (CONFIRMED, "officer",
                                                                                        "officer2")
    (confirmed,) = audit(p, "confirm")
    assert confirmed.actor == "officer2" and orjson.loads(confirmed.detail)["requested_by"] == "officer"
    assert read(str(p.db), lambda s: s.alerts.get(alert_id)).created_by == "officer"
    assert all(r.actor in ("officer", "officer2") for r in audit(p, "fire") + audit(p, "confirm"))

    # Released once: a second confirmation (even an approver's) is refused and sends nothing more.
    code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes", as_user="approver"))
    assert code == 2 and "already confirmed" in err
    assert len(p.x.tweets) == 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_confirm_shows_what_the_public_will_see_and_needs_the_alert_id_typed(
    p: Providers, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alert_id = fire_quake(p, capsys)
    # No terminal and no --yes: shown, then refused.
    code, out, err = run(capsys, p.cli("confirm", alert_id, as_user="officer2"))
    assert code == 2 and "typed confirmation" in err and "nothing was sent" in err
    # What the public will see: every channel, its text in each language, the audience and the cost, LIVE.
    for channel in ("x-authority", "telegram-authority", "sms-residents", "partner-hook"):
        assert channel in out
    # Each value isolated in its text's direction (RLI in Arabic, LRI in English).
    assert "زلزال بقوة \u20675.4\u2069 درجة" in out and "A magnitude \u20665.4\u2069 earthquake was felt" in out
    assert "SMS: 3 recipient(s)" in out and "LIVE" in out and "fired by officer" in out
    assert not sent_anything(p)

    typed: list[str] = []

    def answer(prompt: str) -> str:
        typed.append(prompt)
        return answers.pop(0)

    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("builtins.input", answer)
    answers = ["earthquake"]  # the template id is not what is asked for
    code, _, err = run(capsys, p.cli("confirm", alert_id, as_user="officer2"))
    assert code == 2 and "not confirmed" in err and not sent_anything(p)
    assert alert_id in typed[0]
    answers = [alert_id]
    code, out, err = run(capsys, p.cli("confirm", alert_id, as_user="officer2"))
    assert code == 0, err
    assert "all deliveries sent" in out
    assert len(p.x.tweets) == 2


def test_confirm_after_the_window_closed_is_refused(p: Providers, capsys: pytest.CaptureFixture[str]) -> None:
    alert_id = fire_quake(p, capsys)

    async def close_window(store: Any) -> None:
        await store.db.execute("UPDATE pending_fires SET confirm_by = ? WHERE alert_id = ?",
                               (time.time() - 1, alert_id))

    read(str(p.db), close_window)
    code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes", as_user="officer2"))
    assert code == 2 and "confirmation window" in err and "closed" in err
    assert not sent_anything(p)
    assert audit(p, "confirmation_expired")[0].actor == "officer2"


def test_confirm_of_an_unknown_or_ordinary_alert_names_the_problem(
    p: Providers, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, p.cli("confirm", "nope", "--yes", as_user="officer2"))
    assert code == 2 and "no alert with id 'nope'" in err
    code, out, err = run(capsys, p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                                       as_user="officer"))
    assert code == 0, err
    alert_id = orjson.loads(out)["alert_id"]
    code, _, err = run(capsys, p.cli("confirm", alert_id, "--yes", as_user="officer2"))
    assert code == 2 and "not awaiting confirmation" in err
