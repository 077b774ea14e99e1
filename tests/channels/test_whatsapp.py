"""WhatsAppChannel: what is particular to WhatsApp through Twilio (the shared checks are in test_conformance.py).

The real twilio SDK against FakeTwilio on 127.0.0.1, which knows the approved
templates (Content SIDs) and fills them in as Twilio does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.channels.base import Clients, OutboundMessage
from broadcaster.channels.registry import KINDS
from broadcaster.channels.whatsapp import WhatsAppChannel, WhatsAppOptions, content_variables, whatsapp_body
from broadcaster.cli import main
from broadcaster.engine.outbox import plan_alert
from broadcaster.errors import ConfigError, DeliveryError, Reason, VariableError
from broadcaster.states import Mode
from broadcaster.templates.catalogue import Catalogue
from broadcaster.templates.variables import example_inputs
from tests.channels.kinds import PHONE, TWILIO_SID, TWILIO_TOKEN, WHATSAPP_BODY, WHATSAPP_SID, WHATSAPP_TEXT
from tests.fakes.twilio import FakeTwilio, hang, twilio_error
from tests.support import channel_config, make_config, write_config

ROOT = Path(__file__).resolve().parents[2]
FROM = "whatsapp:+15005550006"
TO = "whatsapp:" + PHONE
EXERCISE_SID = "HX" + "e" * 32
EN_SID = "HX" + "f0" * 16


def sids(ar: str = WHATSAPP_SID, en: str = EN_SID) -> dict[str, dict[str, str]]:
    return {"road_closure": {"ar": ar, "en": en}}


def table(**extra: Any) -> dict[str, Any]:
    return {"id": "whatsapp-residents", "kind": "whatsapp", "account_sid_env": "BCAST_TEST_TWILIO_SID",
            "auth_token_env": "BCAST_TEST_TWILIO_TOKEN", "from": FROM, "recipients": "recipients.csv",
            "content_sid": sids(), "timeout_s": 2.0, **extra}


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BCAST_TEST_TWILIO_SID", TWILIO_SID)
    monkeypatch.setenv("BCAST_TEST_TWILIO_TOKEN", TWILIO_TOKEN)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    content = {WHATSAPP_SID: WHATSAPP_BODY, EXERCISE_SID: "[تمرين] " + WHATSAPP_BODY}
    async with FakeTwilio(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, content=content) as server:
        yield server


def subscribers(folder: Path) -> Path:
    """An opted-in list in ``folder``, as recipients.csv (one Arabic and one English reader, in Dubai)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipients.csv").write_text("phone,language,area\n+971501234567,ar,DXB\n+971521234567,en,DXB\n",
                                           encoding="utf-8")
    return folder


def make(tmp_path: Path, base_url: str, clients: Clients, **extra: Any) -> WhatsAppChannel:
    return WhatsAppChannel(channel_config(tmp_path, **table(api_base=base_url, **extra)), clients)


def message(*, exercise: bool = False, text: str = WHATSAPP_TEXT, delivery_id: int = 1) -> OutboundMessage:
    variables = {"1": "\u2068E11\u2069", "2": "حادث مروري", "3": "شارع الخيل"}
    payload = orjson.dumps({"template": "road_closure", "exercise": exercise, "variables": variables})
    return OutboundMessage(delivery_id=delivery_id, alert_id="A-1", channel_id="whatsapp-residents", language="ar",
                           text=text, recipient=TO, payload=payload)


@pytest.fixture
async def channel(tmp_path: Path, fake: FakeTwilio, creds: None, clients: Clients) -> AsyncIterator[WhatsAppChannel]:
    async with make(tmp_path, fake.base_url, clients) as ch:
        yield ch


async def test_a_message_is_the_approved_template_and_its_values_never_free_text(
    channel: WhatsAppChannel, fake: FakeTwilio
) -> None:
    receipt = await channel.send(message())

    (request,) = fake.requests
    assert request.form["To"] == TO and request.form["From"] == FROM
    assert request.form["ContentSid"] == WHATSAPP_SID
    assert orjson.loads(request.form["ContentVariables"]) == {"1": "\u2068E11\u2069", "2": "حادث مروري",
                                                               "3": "شارع الخيل"}
    assert "Body" not in request.form
    (stored,) = fake.messages
    assert stored["body"] == WHATSAPP_TEXT, "what the subscriber reads is the previewed text"
    assert receipt.provider_id == stored["sid"] and receipt.http_status == 201


async def test_an_exercise_alert_goes_out_as_the_exercise_template(tmp_path: Path, fake: FakeTwilio, creds: None,
                                                                  clients: Clients) -> None:
    async with make(tmp_path, fake.base_url, clients, exercise=True,
                    exercise_content_sid=sids(ar=EXERCISE_SID, en="HX" + "d" * 32)) as ch:
        await ch.send(message(exercise=True, text="[تمرين] " + WHATSAPP_TEXT))
        await ch.send(message(delivery_id=2))  # a live alert to an exercise channel: the live template

    assert [m["content_sid"] for m in fake.messages] == [EXERCISE_SID, WHATSAPP_SID]
    assert fake.messages[0]["body"].startswith("[تمرين] ")
    assert not fake.messages[1]["body"].startswith("[تمرين]")


@pytest.mark.parametrize(("step", "reason", "retryable"), [
    (twilio_error(400, 63016, "Failed to send freeform message"), Reason.BAD_REQUEST, False),
    (twilio_error(400, 63024, "Invalid message recipient"), Reason.RECIPIENT_GONE, False),
    (twilio_error(400, 63003, "Channel could not find To address"), Reason.RECIPIENT_GONE, False),
    (twilio_error(400, 63018, "Rate limit exceeded for Channel"), Reason.RATE_LIMITED, True),
    (twilio_error(400, 63027, "Template does not exist for a language and locale"), Reason.BAD_REQUEST, False),
    (twilio_error(400, 63007, "Twilio could not find a Channel with the specified From address"),
     Reason.BAD_REQUEST, False),
    (twilio_error(401, 63001, "Channel could not authenticate the request"), Reason.AUTH, False),
])
async def test_twilios_whatsapp_errors_join_the_taxonomy(channel: WhatsAppChannel, fake: FakeTwilio, step: Any,
                                                         reason: Reason, retryable: bool) -> None:
    fake.script(step)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(message())
    error = caught.value
    assert (error.reason, error.retryable, error.sent_maybe) == (reason, retryable, False)
    assert error.provider_code == str(step.body["code"])
    assert fake.messages == []


async def test_the_daily_limit_pauses_for_a_quarter_hour(channel: WhatsAppChannel, fake: FakeTwilio) -> None:
    fake.script(twilio_error(400, 63038, "Account exceeded the daily messages limit"))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(message())
    assert (caught.value.reason, caught.value.retryable, caught.value.retry_after) == (Reason.RATE_LIMITED, True,
                                                                                       900.0)
    assert "24-hour message limit" in str(caught.value)


async def test_a_lost_answer_is_found_by_reconcile_as_twilio_filled_the_template(
    channel: WhatsAppChannel, fake: FakeTwilio
) -> None:
    since = datetime.now(UTC)
    fake.script(hang(30, accept=True))
    with pytest.raises(DeliveryError) as caught:
        await channel.send(message())
    assert caught.value.sent_maybe

    found = await channel.reconcile(message(), since)
    other = await channel.reconcile(message(text="إغلاق طريق آخر"), since)
    assert found is not None and found.provider_id == fake.messages[0]["sid"]
    assert other is None
    assert len(fake.messages) == 1


async def test_a_template_the_channel_has_no_content_sid_for_is_not_sent(channel: WhatsAppChannel,
                                                                        fake: FakeTwilio) -> None:
    moved = OutboundMessage(delivery_id=1, alert_id="A-1", channel_id="whatsapp-residents", language="ar",
                            text="-", recipient=TO,
                            payload=orjson.dumps({"template": "earthquake", "exercise": False, "variables": {}}))
    with pytest.raises(DeliveryError, match="no content_sid for earthquake in ar") as caught:
        await channel.send(moved)
    assert caught.value.retryable is False and fake.requests == []


def test_the_body_to_register_numbers_each_variable_where_it_first_appears() -> None:
    text = "إغلاق {road} بسبب {reason} من {starts} حتى {ends}؛ {road} مغلق."
    assert whatsapp_body(text, "ar") == "إغلاق {{1}} بسبب {{2}} من {{3}} حتى {{4}}؛ {{1}} مغلق."
    assert whatsapp_body("{road} closed", "en", exercise=True) == "[EXERCISE] {{1}} closed"
    values = {"road": {"ar": "E11", "en": "E11"}, "reason": {"ar": "حادث", "en": "an accident"},
              "starts": {"ar": "1", "en": "1"}, "ends": {"ar": "2", "en": "2"}}
    # Each value isolated as it sits in the Arabic text (RLI … PDI), Latin or not.
    assert content_variables(text, values, "ar") == {"1": "\u2067E11\u2069", "2": "\u2067حادث\u2069",
                                                     "3": "\u20671\u2069", "4": "\u20672\u2069"}
    assert content_variables("{road} closed", values, "en") == {"1": "\u2066E11\u2069"}


@pytest.mark.parametrize("exercise", [False, True])
async def test_every_shipped_template_filled_in_by_twilio_reads_as_the_preview(tmp_path: Path,
                                                                               exercise: bool) -> None:
    """Register whatsapp_body of each approved template: Twilio's fill of the values is the rendered text."""
    catalogue = Catalogue(ROOT / "templates", KINDS)
    for template_id in catalogue.ids():
        sid_table = {template_id: {"ar": "HX" + "1" * 32, "en": "HX" + "2" * 32}}
        keys = {"exercise": True, "exercise_content_sid": {template_id: {"ar": "HX" + "3" * 32,
                                                                         "en": "HX" + "4" * 32}}} if exercise else {}
        config = make_config(subscribers(tmp_path / template_id), [table(content_sid=sid_table, **keys)],
                             templates=str(ROOT / "templates"))
        template = catalogue.get(template_id)
        assert "whatsapp" in template.kinds, template_id
        inputs = example_inputs(template, 1_800_000_000.0, config.timezone)
        plan = await plan_alert(config, catalogue, template_id, inputs,
                                mode=Mode.EXERCISE if exercise else Mode.LIVE, now=1_800_000_000.0,
                                require_approval=False)
        for record in plan.messages:
            assert record.payload is not None
            sent = orjson.loads(record.payload)
            body = whatsapp_body(template.text[record.language]["long"], record.language, exercise=exercise)
            filled = body
            for number, value in sent["variables"].items():
                filled = filled.replace("{{" + number + "}}", value)
            assert filled == record.text, (template_id, record.language)
            assert sent["exercise"] is exercise and sent["template"] == template_id


async def test_a_value_whatsapp_would_refuse_stops_the_fire_before_anything_is_stored(tmp_path: Path) -> None:
    catalogue = Catalogue(ROOT / "templates", KINDS)
    config = make_config(subscribers(tmp_path), [table()], templates=str(ROOT / "templates"))
    template = catalogue.get("road_closure")
    inputs = example_inputs(template, 1_800_000_000.0, config.timezone)
    inputs["detour"] = {"ar": "شارع الخيل     ثم الإمارات", "en": "Al Khail Road"}
    with pytest.raises(VariableError, match=r"variable 'detour' \(ar\) runs more than four spaces"):
        await plan_alert(config, catalogue, "road_closure", inputs, mode=Mode.LIVE, now=1_800_000_000.0,
                         require_approval=False)


async def test_a_fire_without_a_content_sid_for_the_template_is_refused_naming_the_key(tmp_path: Path) -> None:
    catalogue = Catalogue(ROOT / "templates", KINDS)
    config = make_config(tmp_path, [table(content_sid={"road_closure": {"ar": WHATSAPP_SID}})],
                         templates=str(ROOT / "templates"))
    inputs = example_inputs(catalogue.get("road_closure"), 1_800_000_000.0, config.timezone)
    with pytest.raises(ConfigError) as caught:
        await plan_alert(config, catalogue, "road_closure", inputs, mode=Mode.LIVE, now=1_800_000_000.0,
                         require_approval=False)
    assert "channel 'whatsapp-residents'" in str(caught.value)
    assert "key 'content_sid' has no Content SID for road_closure in en" in str(caught.value)
    # An exercise fire needs the exercise templates: the live ones carry no marker.
    (tmp_path / "exercise").mkdir()
    exercise = make_config(tmp_path / "exercise", [table(exercise=True)], templates=str(ROOT / "templates"))
    with pytest.raises(ConfigError, match="key 'exercise_content_sid' has no Content SID for road_closure in ar"):
        await plan_alert(exercise, catalogue, "road_closure", inputs, mode=Mode.EXERCISE, now=1_800_000_000.0,
                         require_approval=False)


@pytest.mark.parametrize(("extra", "expected"), [
    ({"from": "+15005550006"}, "key 'from': must be \"whatsapp:\" and an E.164 number"),
    ({"from": "whatsapp:+1500"}, "key 'from'"),
    ({"content_sid": {}}, "key 'content_sid': must be a table of template ids"),
    ({"content_sid": {"road_closure": {"fr": WHATSAPP_SID}}}, "road_closure.fr: the languages are ar and en"),
    ({"content_sid": {"road_closure": {"ar": "SM" + "0" * 32}}}, "road_closure.ar must be a Content SID"),
    ({"content_sid": {"Road Closure": {"ar": WHATSAPP_SID}}}, "'Road Closure' is not a template id"),
    ({"exercise_content_sid": sids(ar=EXERCISE_SID)}, "only an exercise = true channel"),
    ({"exercise": True, "exercise_content_sid": sids()}, "is also in 'content_sid'"),
])
def test_config_errors_name_the_key(tmp_path: Path, extra: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        channel_config(tmp_path, **table(**extra))
    assert "channel 'whatsapp-residents'" in str(caught.value) and expected in str(caught.value)


def test_the_options_answer_which_sid_a_mode_uses(tmp_path: Path) -> None:
    exercise_sids = {"road_closure": {"ar": EXERCISE_SID}}
    config = channel_config(tmp_path, **table(exercise=True, exercise_content_sid=exercise_sids))
    options = config.options_of(WhatsAppOptions)
    assert options.sid("road_closure", "ar", exercise=False) == WHATSAPP_SID
    assert options.sid("road_closure", "ar", exercise=True) == EXERCISE_SID
    assert options.sid("road_closure", "en", exercise=True) is None
    assert WhatsAppChannel.template_problems(config, "road_closure", exercise=True) == [
        "key 'exercise_content_sid' has no Content SID for road_closure in en "
        "(exercise_content_sid.road_closure = { en = \"HX…\" })"]
    assert config.recipients is not None and config.address_prefix == "whatsapp:"


def test_channels_check_names_every_template_and_language_without_a_content_sid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exercise_sids = {"road_closure": {"ar": EXERCISE_SID}}
    path = write_config(subscribers(tmp_path), [table(exercise=True, exercise_content_sid=exercise_sids)],
                        templates=str(ROOT / "templates"))
    code = main(["--config", str(path), "--db", str(tmp_path / "db.sqlite"), "channels", "check", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "channel 'whatsapp-residents': key 'content_sid' has no Content SID for earthquake in ar" in err
    assert "key 'content_sid' has no Content SID for road_closure" not in err
    assert "key 'exercise_content_sid' has no Content SID for road_closure in en" in err
    assert "key 'exercise_content_sid' has no Content SID for cancel in ar" in err
