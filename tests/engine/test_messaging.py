"""WhatsApp and email in whole fires: the engine, the real SDKs (twilio, aiosmtplib) and the loopback fakes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from broadcaster.app.context import open_app
from broadcaster.app.fire import run_plan
from broadcaster.app.follow_up import plan_cancel
from broadcaster.engine.outbox import plan_alert
from broadcaster.engine.retry import RetryPolicy
from broadcaster.states import Mode
from broadcaster.templates.variables import example_inputs
from tests.engine.providers import SECRETS, Providers
from tests.fakes.smtp import step
from tests.fakes.twilio import hang, twilio_error
from tests.support import Reader

FAST = RetryPolicy(base_s=0.02, cap_s=0.1, reconcile_after_s=0.2)
MESSAGING = "sms-residents,whatsapp-residents,email-residents"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def providers(tmp_path: Path, recipients: int = 6, **options: object) -> Providers:
    return Providers(tmp_path, recipients=recipients, channel_options=dict(options),
                     extra_channels=lambda p: [p.whatsapp_channel(), p.email_channel()])


def fire(p: Providers, *, mode: Mode = Mode.LIVE, selection: str = MESSAGING) -> tuple[Reader, str]:
    async def main() -> str:
        async with open_app(str(p.config), str(p.db)) as app:
            template, now = app.catalogue.get("road_closure"), time.time()
            plan = await plan_alert(app.config, app.catalogue, "road_closure",
                                    example_inputs(template, now, app.config.timezone), mode=mode, now=now,
                                    selection=selection)
            await run_plan(app, plan, policy=FAST)
            return plan.alert.id

    return Reader(p.db), asyncio.run(main())


def cancel(p: Providers, original: str) -> str:
    async def main() -> str:
        async with open_app(str(p.config), str(p.db)) as app:
            plan = await plan_cancel(app, original, mode=Mode.LIVE, now=time.time())
            await run_plan(app, plan, policy=FAST)
            return plan.alert.id

    return asyncio.run(main())


def test_one_fire_reaches_each_phone_by_sms_and_by_whatsapp_and_each_address_by_email(tmp_path: Path) -> None:
    with providers(tmp_path) as p:
        store, alert_id = fire(p)
    assert {c: set(s) for c, s in store.state_counts(alert_id).items()} == {
        "sms-residents": {"sent"}, "whatsapp-residents": {"sent"}, "email-residents": {"sent"}}
    sms = [m for m in p.twilio.messages if not m["to"].startswith("whatsapp:")]
    whatsapp = [m for m in p.twilio.messages if m["to"].startswith("whatsapp:")]
    assert sorted(m["to"] for m in sms) == sorted(p.phones)
    assert sorted(m["to"] for m in whatsapp) == sorted("whatsapp:" + phone for phone in p.phones)
    assert all(m["content_sid"] and m["from"] == "whatsapp:+15005550006" for m in whatsapp)
    # What Twilio filled in from the approved template is the text the officer previewed, in each language.
    texts = {d.recipient: d for d in store.deliveries(alert_id)}
    previews = {(a.channel, a.language) for a in store.attempts(alert_id)}
    assert ("whatsapp-residents", "ar") in previews and ("whatsapp-residents", "en") in previews
    alert = store.alert(alert_id)
    for message in whatsapp:
        language = texts[message["to"]].language
        # ... without the verification line: a registered template cannot carry text added at send time.
        long, _, line = alert.forms[language]["long"].rpartition("\n\n")
        assert line.startswith(("تحقق: ", "Verify: ")) and message["body"] == long
    assert sorted(a for m in p.smtp.messages for a in m.rcpt_tos) == sorted(p.emails)
    first = p.smtp.messages[0].message
    assert first["Subject"].startswith("إغلاق") and "closed" in first["Subject"]


def test_a_cancel_reaches_the_same_people_and_each_email_replies_to_the_one_it_corrects(tmp_path: Path) -> None:
    with providers(tmp_path, recipients=4) as p:
        store, original = fire(p)
        sent = {m.rcpt_tos[0]: m.message["Message-ID"] for m in p.smtp.messages}
        correction = cancel(p, original)
    assert {c: set(s) for c, s in store.state_counts(correction).items()} == {
        "sms-residents": {"sent"}, "whatsapp-residents": {"sent"}, "email-residents": {"sent"}}
    replies = p.smtp.messages[len(sent):]
    assert sorted(m.rcpt_tos[0] for m in replies) == sorted(p.emails)
    for reply in replies:
        message = reply.message
        assert message["In-Reply-To"] == sent[reply.rcpt_tos[0]] == message["References"]
        assert message["Message-ID"] not in sent.values()
    whatsapp = [m for m in p.twilio.messages if m["to"].startswith("whatsapp:")]
    assert len(whatsapp) == 2 * len(p.phones)
    assert {m["content_sid"] for m in whatsapp[len(p.phones):]} <= set(p.content_sid["cancel"].values())


def test_an_exercise_goes_to_the_exercise_twins_with_the_exercise_templates(tmp_path: Path) -> None:
    def twins(p: Providers) -> list[dict[str, object]]:
        return [p.whatsapp_channel(id="whatsapp-exercise", exercise=True,
                                   exercise_content_sid=p.exercise_content_sid),
                p.email_channel(id="email-exercise", exercise=True)]

    with Providers(tmp_path, recipients=3, extra_channels=twins) as p:
        store, alert_id = fire(p, mode=Mode.EXERCISE, selection="all")
    assert set(store.state_counts(alert_id)) == {"whatsapp-exercise", "email-exercise"}
    exercise_sids = {sid for by_lang in p.exercise_content_sid.values() for sid in by_lang.values()}
    assert p.twilio.messages and all(m["content_sid"] in exercise_sids for m in p.twilio.messages)
    assert all(m["body"].startswith(("[تمرين] ", "[EXERCISE] ")) for m in p.twilio.messages)
    for stored in p.smtp.messages:
        assert stored.message["Subject"].startswith("[تمرين]")
        plain = stored.message.get_body(("plain",))
        assert plain is not None and "[EXERCISE]" in plain.get_content()


def test_faults_end_in_one_message_each_whatsapp_reconciled_email_resent_as_the_same_message(tmp_path: Path) -> None:
    with providers(tmp_path, recipients=3, timeout_s=0.3) as p:
        # WhatsApp: a rate limit, then a message Twilio took whose answer never came (reconciled, not resent).
        p.twilio.script(twilio_error(429, 63018, "Rate limit exceeded for Channel", retry_after=0),
                        hang(2.0, accept=True))
        # Email: "slow down", then a message the server took while the answer was lost (resent: same Message-ID).
        p.smtp.script(step(421, "4.7.0 Too many messages, slow down", at="MAIL"), step(hang=2.0, accept=True))
        store, alert_id = fire(p, selection="whatsapp-residents,email-residents")
    assert {c: set(s) for c, s in store.state_counts(alert_id).items()} == {
        "whatsapp-residents": {"sent"}, "email-residents": {"sent"}}
    assert sorted(m["to"] for m in p.twilio.messages) == sorted("whatsapp:" + phone for phone in p.phones)
    outcomes = [(a.channel, a.outcome) for a in store.attempts(alert_id)]
    assert ("whatsapp-residents", "reconciled") in outcomes or ("whatsapp-residents", "unknown") in outcomes
    assert ("whatsapp-residents", "retry") in outcomes and ("email-residents", "retry") in outcomes
    assert ("email-residents", "unknown") in outcomes
    by_address: dict[str, list[str]] = {}
    for stored in p.smtp.messages:
        by_address.setdefault(stored.rcpt_tos[0], []).append(stored.message["Message-ID"])
    assert sorted(by_address) == sorted(p.emails)
    twice = {a: ids for a, ids in by_address.items() if len(ids) > 1}
    assert len(twice) == 1 and all(len(set(ids)) == 1 for ids in twice.values()), by_address
