"""One fire, every channel kind, through the real SDKs against the loopback fakes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.app.context import open_app
from broadcaster.app.fire import run_plan
from broadcaster.channels.webhook import verify
from broadcaster.cli import main
from broadcaster.engine.outbox import plan_alert
from broadcaster.engine.retry import RetryPolicy
from broadcaster.states import Mode
from broadcaster.templates.variables import example_inputs
from tests.engine.providers import SECRET_VALUES, SECRETS, Providers, secret_forms
from tests.fakes.server import Step
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import echo_auth, twilio_error
from tests.fakes.webhook import webhook_error
from tests.fakes.x import FakeX
from tests.support import Reader

FAST = RetryPolicy(base_s=0.02, cap_s=0.1, reconcile_after_s=0.2)


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def fire(p: Providers, *, template: str = "road_closure", selection: str = "all") -> tuple[Reader, str]:
    """A live fire in this process, with a fast retry policy; returns the database and the alert id."""

    async def main() -> str:
        async with open_app(str(p.config), str(p.db)) as app:
            now = time.time()
            plan = await plan_alert(app.config, app.catalogue, template,
                                    example_inputs(app.catalogue.get(template), now, app.config.timezone),
                                    mode=Mode.LIVE, now=now, selection=selection)
            await run_plan(app, plan, policy=FAST)
            return plan.alert.id

    return Reader(p.db), asyncio.run(main())


def states(store: Reader, alert_id: str) -> dict[str, dict[str, int]]:
    return store.state_counts(alert_id)


def test_live_fire_cli_puts_every_message_where_it_belongs_exactly_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Providers(tmp_path, recipients=9) as p:
        code = main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json", as_user="officer"))
        out = orjson.loads(capsys.readouterr().out)
    assert code == 0
    assert out["mode"] == "live"
    assert {d["state"] for d in out["deliveries"]} == {"sent"}
    assert all(d["attempts"] == 1 and d["provider_id"] for d in out["deliveries"])
    # X: one post per language, Arabic first.
    assert [t["text"][:7] for t in p.x.tweets] == ["إغلاق \u2067", "\u2066Sheikh"]
    # Telegram: one combined message, Arabic then English, HTML.
    assert len(p.telegram.sent) == 1
    text = p.telegram.sent[0]["text"]
    assert text.index("شارع الشيخ زايد") < text.index("Sheikh Zayed Road")
    assert p.telegram.sent[0]["parse_mode"] == "HTML"
    # SMS: each recipient exactly once, in their own language.
    assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)
    for i, phone in enumerate(p.phones):
        (message,) = p.twilio.messages_to(phone)
        arabic = any("\u0600" <= ch <= "\u06ff" for ch in message["body"])
        assert arabic == bool(i % 3), phone
    # Webhook: one signed POST with both languages.
    (hook,) = p.webhook.deliveries
    assert hook.signature_ok
    assert [info["language"] for info in hook.json["info"]] == ["ar", "en"]
    assert hook.json["status"] == "Actual"


def test_retries_after_429_5xx_and_timeouts_end_in_exactly_one_send(tmp_path: Path) -> None:
    with Providers(tmp_path, recipients=3) as p:
        p.telegram.script(FakeTelegram.retry_after(1), FakeTelegram.bad_gateway())
        p.x.script(FakeX.gateway_error(503), FakeX.rate_limited(reset_at=int(time.time()) + 1))
        p.twilio.script(twilio_error(429, 20429, "Too Many Requests"), twilio_error(500, 20500, "Internal"))
        p.webhook.script(webhook_error(503, retry_after=0), webhook_error(502))
        app, alert_id = fire(p)
    assert all(set(counts) == {"sent"} for counts in states(app, alert_id).values()), states(app, alert_id)
    assert len(p.telegram.sent) == 1
    assert len(p.x.tweets) == 2
    assert sorted(m["to"] for m in p.twilio.messages) == sorted(p.phones)
    assert len(p.webhook.deliveries) == 1
    attempts = [a for a in app.attempts(alert_id)]
    # A Twilio 500 may have been acted on: it is reconciled (not found) before the resend.
    retried = [a for a in attempts if a.outcome in ("retry", "unknown")]
    assert {a.channel for a in retried} == {"telegram-authority", "x-authority", "sms-residents", "partner-hook"}
    assert {a.http_status for a in retried} >= {429, 502, 503, 500}


def test_timeout_then_retry_sends_once_even_when_the_lost_request_was_accepted(tmp_path: Path) -> None:
    with Providers(tmp_path, recipients=2, channel_options={"timeout_s": 0.3}) as p:
        # The first SMS is accepted by the provider but its answer never comes back.
        p.twilio.script(twilio_error(201, 0, accept=True, hang=2.0))
        p.webhook.script(webhook_error(200, hang=2.0, accept=True))
        app, alert_id = fire(p)
    counts = states(app, alert_id)
    assert counts["sms-residents"] == {"sent": 2}
    # Reconciled, not resent: each phone has exactly one message at the provider.
    assert all(len(p.twilio.messages_to(phone)) == 1 for phone in p.phones)
    outcomes = [a.outcome for a in app.attempts(alert_id) if a.channel == "sms-residents"]
    assert outcomes.count("unknown") == 1 and outcomes.count("reconciled") == 1
    # The webhook resends after a timeout; the idempotency key is the same both times.
    keys = p.webhook.keys
    assert len(keys) == 2 and keys[0] == keys[1]


def test_a_permanent_error_costs_one_attempt_and_no_retry(tmp_path: Path) -> None:
    with Providers(tmp_path, recipients=3) as p:
        p.twilio.script(twilio_error(400, 21211, "The 'To' number is not a valid phone number."))
        p.telegram.script(FakeTelegram.chat_not_found())
        app, alert_id = fire(p)
    counts = states(app, alert_id)
    assert counts["sms-residents"] == {"failed": 1, "sent": 2}
    assert counts["telegram-authority"] == {"failed": 1}
    assert p.twilio.posts == 3
    failed = [d for d in app.deliveries(alert_id) if d.state == "failed"]
    assert all(d.attempts == 1 for d in failed)
    codes = {a.error_code for a in app.attempts(alert_id) if a.outcome == "failed"}
    assert "21211" in codes


def test_a_channel_paused_by_429_does_not_slow_the_others(tmp_path: Path) -> None:
    with Providers(tmp_path, recipients=30) as p:
        p.telegram.script(FakeTelegram.retry_after(2))
        app, alert_id = fire(p)
    attempts = list(app.attempts(alert_id))
    paused = [a for a in attempts if a.channel == "telegram-authority"]
    assert [a.outcome for a in paused] == ["retry", "sent"]
    resumed_at = paused[1].started_at
    assert resumed_at - paused[0].finished_at >= 2.0  # retry_after honoured
    others = [a for a in attempts if a.channel != "telegram-authority"]
    assert len(others) == 30 + 2 + 1
    # Everything else finished while Telegram was still paused.
    assert max(a.finished_at or 0 for a in others) < resumed_at


def test_no_secret_in_logs_errors_or_log_output(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")
    with Providers(tmp_path, recipients=2) as p:
        p.telegram.script(FakeTelegram.unauthorized())
        p.x.script(FakeX.unauthorized())
        p.webhook.script(webhook_error(401))
        code = main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json", as_user="officer"))
        fired = capsys.readouterr().out
        alert_id = orjson.loads(fired)["alert_id"]
        main(p.cli("log", alert_id, "--json"))
        main(p.cli("log", alert_id))
        logged = capsys.readouterr().out
    assert code == 1
    details = [line for line in logged.splitlines() if line.startswith("{")]
    assert any('"auth' in line for line in details)
    everything = fired + logged + caplog.text + repr([r.__dict__ for r in caplog.records])
    for secret in SECRET_VALUES:
        assert secret not in everything


def test_an_echoing_provider_leaves_no_form_of_a_secret_in_any_stored_detail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Twilio echoes its ``Authorization: Basic base64(SID:token)``; Telegram the ``/bot<token>/`` path,
    which PTB lower-cases. Neither reaches the attempt log, a delivery's last_error or ``log``."""
    with Providers(tmp_path, recipients=3) as p:
        p.twilio.script(echo_auth(), times=3)
        p.telegram.script(FakeTelegram.echo_url())
        assert main(p.cli("fire", "road_closure", "--use-examples", "--live", "--yes", "--json",
                          as_user="officer")) == 1
        alert_id = orjson.loads(capsys.readouterr().out)["alert_id"]
        assert main(p.cli("log", alert_id, "--json")) == 0
        assert main(p.cli("log", alert_id, "--all")) == 0
        shown = capsys.readouterr().out
        echoed = [r.headers["Authorization"] for r in p.twilio.requests if r.method == "POST"]
    with sqlite3.connect(p.db) as db:
        stored = [str(v) for row in db.execute("SELECT detail, error_code FROM attempts") for v in row]
        stored += [str(v) for (v,) in db.execute("SELECT last_error FROM deliveries")]
    assert echoed and all(h.startswith("Basic ") for h in echoed)  # the fakes did echo a credential
    assert any("basic ******** is not valid for" in d.lower() for d in stored)
    assert any("no such method /bot********/sendmessage" in d.lower() for d in stored)
    everything = ("\n".join(stored) + shown).lower()
    assert [form for form in secret_forms() if form in everything] == []


def test_webhook_signature_verifies_with_the_partner_secret(tmp_path: Path) -> None:
    with Providers(tmp_path, recipients=1) as p:
        fire(p, selection="partner-hook")
    (hook,) = p.webhook.deliveries
    assert hook.signature_ok
    assert hook.timestamp is not None
    assert Step  # scripted steps share the base type across fakes
    assert callable(verify)


def test_a_fire_is_audited_once_committed_and_not_when_its_commit_fails(tmp_path: Path) -> None:
    from broadcaster.app.fire import Request, launch, plan_request
    from broadcaster.audit import AuditLog
    from broadcaster.errors import StoreUnavailable

    async def fire_once(app: Any, *, fail_commit: bool) -> str:
        request = Request("fire", Mode.DRY_RUN, "road_closure",
                          example_inputs(app.catalogue.get("road_closure"), time.time(), app.config.timezone))
        plan = await plan_request(app, request, now=time.time(), created_by="officer-1")
        await launch(app, plan, request, actor="officer-1", now=time.time())
        if fail_commit:
            async def refuse(*_: Any, **__: Any) -> None:
                raise StoreUnavailable("the database went away")

            app.store.alerts.create = refuse
            with pytest.raises(StoreUnavailable):
                await run_plan(app, plan)
        else:
            await run_plan(app, plan)
        return plan.alert.id

    async def main() -> tuple[str, str, list[Any]]:
        async with open_app(str(p.config), str(p.db)) as app:
            sent = await fire_once(app, fail_commit=False)
        async with open_app(str(p.config), str(p.db)) as app:
            failed = await fire_once(app, fail_commit=True)
            rows = [row async for row in AuditLog(app.store.db).rows() if row.action == "fire"]
        return sent, failed, rows

    with Providers(tmp_path, recipients=4) as p:
        sent, failed, rows = asyncio.run(main())

    [row] = rows  # the failed fire sent nothing, and says nothing
    detail = orjson.loads(row.detail)
    assert (row.actor, detail["alert_id"], detail["state"]) == ("officer-1", sent, "sending")
    assert detail["deliveries"] == len(Reader(p.db).deliveries(sent)) > 0
    assert Reader(p.db).alerts() and failed not in [a.id for a in Reader(p.db).alerts()]
