"""The cell_broadcast kind against a fake osmo-cbc ECBE: identifiers, serial numbers, withdrawal, errors, reconcile.

The conformance suite covers what every kind does (one request per send, timeouts, 429, the shared pool,
secrets, the dry-run without a socket); this file what is particular to cell broadcast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from broadcaster.channels import cbs_levels
from broadcaster.channels.base import AlertDocument, Clients, OutboundMessage
from broadcaster.channels.cell_broadcast import CellBroadcastChannel
from broadcaster.config import ChannelConfig
from broadcaster.errors import ConfigError, DeliveryError, Reason, TemplateError
from broadcaster.templates.render import Rendered
from tests.fakes.cbc import FakeCbc, cbc_error, ecbe_validator
from tests.support import channel_config

EARTHQUAKE = {"category": "Geo", "urgency": "Immediate", "severity": "Severe", "certainty": "Observed"}
DUST_STORM = {"category": "Met", "urgency": "Expected", "severity": "Moderate", "certainty": "Likely"}
AR = "ابتعدوا عن المباني المتضررة ولا تستخدموا المصاعد. زلزال بقوة \u20675.4\u2069 درجة في \u2067دبي\u2069."
EN = "Stay away from damaged buildings and do not use lifts. A magnitude 5.4 earthquake was felt in Dubai."


def config(tmp_path: Path, api_base: str = "http://127.0.0.1:9", **table: Any) -> ChannelConfig:
    keys: dict[str, Any] = {"id": "cbc-national", "kind": "cell_broadcast", "api_base": api_base,
                            "cbe_name": "alerts.example.gov", "scopes": {"DXB": "plmn", "DXB-HATTA": "plmn"},
                            "timeout_s": 2.0, **table}
    return channel_config(tmp_path, **keys)


def document(*, cap: dict[str, str] | None = None, status: str = "Actual", msg_type: str = "Alert",
             areas: tuple[str, ...] = ("DXB",), root: str | None = None, number: int = 0,
             forms: bool = True) -> AlertDocument:
    texts = {"ar": {"headline": "h", "short": "s", "long": "l"}, "en": {"headline": "h", "short": "s", "long": "l"}}
    if forms:
        texts["ar"]["cell_broadcast"], texts["en"]["cell_broadcast"] = AR, EN
    return AlertDocument(
        alert_id="20261130-190000-abcdef" if root is None else f"{root}-u{number}", identifier="x", sender="x",
        sent="2026-11-30T23:00:00+04:00", expires="2026-12-01T05:00:00+04:00", status=status, msg_type=msg_type,
        references=root, template="earthquake", cap=cap or EARTHQUAKE, event={"ar": "زلزال", "en": "Earthquake"},
        areas=areas, forms=texts, thread_root=root, thread_number=number)


def bodies(cfg: ChannelConfig, doc: AlertDocument) -> dict[str, dict[str, Any]]:
    """Each language's payload envelope, as the outbox commits it."""
    rows = CellBroadcastChannel.render(doc.forms, cfg)
    return {r.language: orjson.loads(CellBroadcastChannel.payload(doc, r, cfg)) for r in rows}


def message(envelope: dict[str, Any], language: str = "ar", **fields: Any) -> OutboundMessage:
    base: dict[str, Any] = {"delivery_id": 1, "alert_id": "A-1", "channel_id": "cbc-national", "text": "t"}
    return OutboundMessage(**{**base, **fields}, language=language, payload=orjson.dumps(envelope))


@pytest.fixture
async def fake() -> Any:
    async with FakeCbc() as server:
        yield server


def test_the_identifier_table_is_3gpp_ts_23041s() -> None:
    assert dict(cbs_levels.LEVELS) == {
        ("Extreme", "Immediate", "Observed"): 4371, ("Extreme", "Immediate", "Likely"): 4372,
        ("Extreme", "Expected", "Observed"): 4373, ("Extreme", "Expected", "Likely"): 4374,
        ("Severe", "Immediate", "Observed"): 4375, ("Severe", "Immediate", "Likely"): 4376,
        ("Severe", "Expected", "Observed"): 4377, ("Severe", "Expected", "Likely"): 4378,
    }
    assert (cbs_levels.PRESIDENTIAL, cbs_levels.AMBER, cbs_levels.MONTHLY_TEST, cbs_levels.EXERCISE) == (
        4370, 4379, 4380, 4381)
    # Every level's additional-language identifier is 13 above it: 4370 -> 4383 ... 4381 -> 4394.
    assert [cbs_levels.identifiers(p, ("ar", "en"))["en"] for p in range(4370, 4382)] == list(range(4383, 4395))
    assert cbs_levels.level_identifier(DUST_STORM) is None


def test_one_message_per_language_under_paired_identifiers_valid_for_osmo_cbc(tmp_path: Path) -> None:
    envelopes = bodies(config(tmp_path), document())
    assert list(envelopes) == ["ar", "en"]
    for envelope in envelopes.values():
        assert envelope["replace"] is False
        ecbe_validator().validate(envelope["body"])
    ar, en = (envelopes[lang]["body"]["smscb_message"] for lang in ("ar", "en"))
    assert (ar["message_id"], en["message_id"]) == (4375, 4388)  # Severe / Immediate / Observed, and its pair
    assert ar["payload"]["payload_decoded"] == {"character_set": "ucs2", "language": "ar", "data_utf8": AR}
    assert en["payload"]["payload_decoded"] == {"character_set": "gsm", "language": "en", "data_utf8": EN}
    assert ar["serial_nr"] == en["serial_nr"] == {"serial_nr_decoded": {
        "geo_scope": "plmn_wide", "msg_code": cbs_levels.msg_code("20261130-190000-abcdef"), "update_nr": 0}}


def test_an_english_only_channel_sends_english_under_the_primary_identifier(tmp_path: Path) -> None:
    envelopes = bodies(config(tmp_path, languages=["en"]), document())
    assert envelopes["en"]["body"]["smscb_message"]["message_id"] == 4375


def test_an_exercise_goes_out_as_4381_and_4394_whatever_its_level(tmp_path: Path) -> None:
    envelopes = bodies(config(tmp_path), document(status="Exercise"))
    assert [e["body"]["smscb_message"]["message_id"] for e in envelopes.values()] == [4381, 4394]


def test_a_level_with_no_identifier_is_refused_naming_it_and_the_channel(tmp_path: Path) -> None:
    for status in ("Actual", "Exercise"):  # an exercise rehearses what a live alert would do
        with pytest.raises(TemplateError, match=r"Moderate/Expected/Likely.*'cbc-national'"):
            bodies(config(tmp_path), document(cap=DUST_STORM, status=status))


def test_an_alert_area_the_channel_has_no_scope_for_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DXB-MARINA.*'cbc-national'"):
        bodies(config(tmp_path), document(areas=("DXB", "DXB-MARINA")))


def test_updates_keep_the_message_code_and_bump_update_nr_mod_16(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    root = "20261130-190000-abcdef"
    serials = [bodies(cfg, document(root=root, number=n))["ar"]["body"]["smscb_message"]["serial_nr"]
               ["serial_nr_decoded"] for n in (1, 2, 15, 16, 17)]
    assert {s["msg_code"] for s in serials} == {cbs_levels.msg_code(root)}
    assert [s["update_nr"] for s in serials] == [1, 2, 15, 0, 1]
    assert bodies(cfg, document(root=root, number=1))["ar"]["replace"] is True


def test_the_message_code_is_ten_bits_and_stable() -> None:
    codes = {cbs_levels.msg_code(f"20261130-19{i:04d}-abcdef") for i in range(2000)}
    assert all(0 <= c <= 1023 for c in codes) and len(codes) > 500
    assert cbs_levels.msg_code("A") == cbs_levels.msg_code("A")
    assert cbs_levels.serial_number("plmn_wide", 1023, 15) == 0x7FFF


def test_a_cancel_and_a_template_without_the_form_withdraw(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert set(map(orjson.dumps, bodies(cfg, document(msg_type="Cancel")).values())) == {b'{"withdraw":true}'}
    rows = CellBroadcastChannel.render(document(forms=False).forms, cfg)
    assert [(r.language, r.length, r.unit) for r in rows] == [("ar", 0, "pages"), ("en", 0, "pages")]
    assert set(map(orjson.dumps, bodies(cfg, document(forms=False, cap=DUST_STORM)).values())) == {
        b'{"withdraw":true}'}


def test_render_counts_pages_and_never_cuts(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_pages=2)
    long_ar = "ا" * 83  # 41 UCS-2 characters a page: 3 pages
    rows = CellBroadcastChannel.render({"ar": {"cell_broadcast": long_ar}, "en": {"cell_broadcast": "a" * 186}},
                                       cfg)
    assert rows == [Rendered("ar", long_ar, 3, 2, "pages", encoding="UCS-2"),
                    Rendered("en", "a" * 186, 2, 2, "pages", encoding="GSM-7")]
    assert not rows[0].fits and rows[1].fits


@pytest.mark.parametrize("table, key", [({"max_pages": 16}, "max_pages"), ({"geo_scope": "city"}, "geo_scope"),
                                        ({"scopes": {"DXB": "cells"}}, "scopes"), ({"scopes": {}}, "scopes"),
                                        ({"api_base": None}, "api_base"), ({"category": "urgent"}, "category"),
                                        ({"repetition_period": 0}, "repetition_period")])
def test_config_mistakes_name_the_key(tmp_path: Path, table: dict[str, Any], key: str) -> None:
    keys = {k: v for k, v in table.items() if v is not None}
    with pytest.raises(ConfigError, match=repr(key)):
        config(tmp_path, **keys) if "api_base" not in table else channel_config(
            tmp_path, id="c", kind="cell_broadcast", cbe_name="x", scopes={"DXB": "plmn"})


async def test_create_update_and_cancel_on_the_cbc(tmp_path: Path, fake: FakeCbc, clients: Clients) -> None:
    cfg = config(tmp_path, fake.base_url)
    root = "20261130-190000-abcdef"
    async with CellBroadcastChannel(cfg, clients) as channel:
        sent = {lang: await channel.send(message(e, lang)) for lang, e in bodies(cfg, document()).items()}
        for lang, e in bodies(cfg, document(root=root, number=1)).items():
            await channel.send(message(e, lang))
        for lang, e in bodies(cfg, document(root=root, number=2, msg_type="Cancel")).items():
            await channel.send(message(e, lang, reply_to=sent[lang].provider_id))

    code = cbs_levels.msg_code(root)
    assert fake.seen_by_phones() == [(4375, code, 0), (4388, code, 0), (4375, code, 1), (4388, code, 1)]
    assert sent["ar"].provider_id == f"4375/{cbs_levels.serial_number('plmn_wide', code, 0):04x}/A-1"
    # The update withdrew each identifier, then created it again; the cancel withdrew them for good.
    deletes = [r.path for r in fake.requests if r.method == "DELETE"]
    assert deletes == ["/api/ecbe/v1/message/4375", "/api/ecbe/v1/message/4388"] * 2
    assert fake.messages == {}


async def test_a_withdrawal_of_what_is_gone_is_done(tmp_path: Path, fake: FakeCbc, clients: Clients) -> None:
    async with CellBroadcastChannel(config(tmp_path, fake.base_url), clients) as channel:
        receipt = await channel.send(message({"withdraw": True}, reply_to="4375/4c30/A-0"))
        nothing = await channel.send(message({"withdraw": True}))
    assert (receipt.http_status, receipt.note) == (404, "already withdrawn (the CBC no longer held it)")
    assert nothing.note is not None and "nothing to withdraw" in nothing.note
    assert [r.method for r in fake.requests] == ["DELETE"]


async def test_an_identifier_already_on_air_fails_for_good_naming_it(
    tmp_path: Path, fake: FakeCbc, clients: Clients
) -> None:
    cfg = config(tmp_path, fake.base_url)
    other = bodies(cfg, document())["ar"]
    async with CellBroadcastChannel(cfg, clients) as channel:
        await channel.send(message(other))
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message(bodies(cfg, document(areas=("DXB-HATTA",)))["ar"], alert_id="A-2"))
    error = caught.value
    assert (error.reason, error.retryable, error.http_status) == (Reason.BAD_REQUEST, False, 409)
    assert "Could not allocate" in str(error) and "already holds this message identifier" in str(error)
    assert len(fake.history) == 1


async def test_the_cbcs_own_refusal_is_permanent_with_its_text(tmp_path: Path, fake: FakeCbc, clients: Clients) -> None:
    cfg = config(tmp_path, fake.base_url)
    envelope = bodies(cfg, document())["ar"]
    del envelope["body"]["cbe_name"]
    async with CellBroadcastChannel(cfg, clients) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message(envelope))
    assert (caught.value.reason, caught.value.retryable) == (Reason.BAD_REQUEST, False)
    assert "CBCMSG 'cbe_name' is mandatory" in str(caught.value)


@pytest.mark.parametrize("status, retryable, maybe", [(500, True, True), (503, True, False), (502, True, True),
                                                      (501, False, False), (403, False, False), (408, True, False)])
async def test_cbc_answers_join_the_taxonomy(tmp_path: Path, fake: FakeCbc, clients: Clients, status: int,
                                             retryable: bool, maybe: bool) -> None:
    fake.script(cbc_error(status))
    async with CellBroadcastChannel(config(tmp_path, fake.base_url), clients) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message(bodies(config(tmp_path), document())["ar"]))
    assert (caught.value.retryable, caught.value.sent_maybe, caught.value.http_status) == (retryable, maybe, status)


@pytest.fixture
def lost_answer(fake: FakeCbc) -> Iterator[FakeCbc]:
    """The CBC creates the message, then its answer never arrives (the channel times out)."""
    fake.script(cbc_error(201, "Created", hang=30, accept=True))
    yield fake


async def test_a_create_whose_answer_was_lost_is_reconciled_once(
    tmp_path: Path, lost_answer: FakeCbc, clients: Clients
) -> None:
    cfg = config(tmp_path, lost_answer.base_url, timeout_s=0.3)
    envelope = bodies(cfg, document())["ar"]
    async with CellBroadcastChannel(cfg, clients) as channel:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message(envelope))
        assert caught.value.sent_maybe
        found = await channel.reconcile(message(envelope), since=datetime.now(UTC))
    assert found is not None and found.provider_id is not None and found.provider_id.startswith("4375/")
    assert found.note is not None and "taken as this message" in found.note
    assert len(lost_answer.history) == 1, "phones got it once"


async def test_a_create_that_never_landed_is_posted_by_reconcile(
    tmp_path: Path, fake: FakeCbc, clients: Clients
) -> None:
    fake.script(cbc_error(502, "Bad Gateway"))  # a proxy's answer: it may or may not have reached the CBC
    cfg = config(tmp_path, fake.base_url)
    envelope = bodies(cfg, document())["ar"]
    async with CellBroadcastChannel(cfg, clients) as channel:
        with pytest.raises(DeliveryError):
            await channel.send(message(envelope))
        found = await channel.reconcile(message(envelope), since=datetime.now(UTC))
    assert found is not None and found.note == "had not reached the CBC; posted now"
    assert len(fake.history) == 1


async def test_an_update_whose_answer_was_lost_shows_once(tmp_path: Path, fake: FakeCbc, clients: Clients) -> None:
    cfg = config(tmp_path, fake.base_url, timeout_s=0.3)
    root = "20261130-190000-abcdef"
    async with CellBroadcastChannel(cfg, clients) as channel:
        await channel.send(message(bodies(cfg, document())["ar"]))
        update = bodies(cfg, document(root=root, number=1))["ar"]
        fake.script(cbc_error(200, "OK", accept=True), cbc_error(201, "Created", hang=30, accept=True))
        with pytest.raises(DeliveryError):
            await channel.send(message(update))
        found = await channel.reconcile(message(update), since=datetime.now(UTC))
    assert found is not None
    # Withdrawn and posted again under the same identifier and serial number: phones drop the repeat.
    code = cbs_levels.msg_code(root)
    assert fake.seen_by_phones() == [(4375, code, 0), (4375, code, 1), (4375, code, 1)]
    assert len(set(fake.seen_by_phones())) == 2


def test_a_dry_run_document_is_what_a_live_one_is(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    live = bodies(cfg, document())
    rehearsal = bodies(cfg, dataclasses.replace(document(), status="Test"))
    assert live == rehearsal


def test_templates_check_proves_the_worst_case_in_pages_per_language(tmp_path: Path) -> None:
    from broadcaster.channels.registry import KINDS, Target
    from broadcaster.templates.catalogue import Catalogue
    from broadcaster.templates.check import worst_case_problems
    from tests.templates.support import DUBAI, SHIPPED_TEMPLATES

    catalogue = Catalogue(SHIPPED_TEMPLATES, KINDS)
    earthquake = catalogue.get("earthquake")
    roomy = Target("channel 'cbc'", config(tmp_path))
    assert worst_case_problems(earthquake, catalogue.gazetteer, DUBAI, [roomy]) == []
    tight = Target("channel 'cbc'", config(tmp_path, max_pages=3))
    problems = worst_case_problems(earthquake, catalogue.gazetteer, DUBAI, [tight])
    # Arabic (UCS-2, 41 a page) needs more than 3 pages; English (GSM-7, 93 a page) fits even as an exercise update.
    assert problems and all("(cell_broadcast, ar" in p and "pages (UCS-2), limit 3" in p for p in problems)
