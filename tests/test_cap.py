"""CAP 1.2 output: every shipped template × mode × msgType validates against the OASIS schema and passes
Google's Public Alerts profile (``tests/cap/google_profile.py``)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from datetime import datetime
from pathlib import Path
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
import orjson
import pytest

from broadcaster.cap import cap_document, identifier, validate
from broadcaster.cli import main
from broadcaster.engine.outbox import FollowUp, plan_alert
from broadcaster.states import Mode, MsgType
from broadcaster.store.records import AlertRecord
from broadcaster.templates.gazetteer import Gazetteer
from broadcaster.templates.variables import example_inputs
from tests.cap.google_profile import problems
from tests.support import Loaded, loaded

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "channels.toml")
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
OFFSET_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
STATUS = {"dry-run": "Test", "exercise": "Exercise", "live": "Actual"}
SHARED = ("category", "responseType", "urgency", "severity", "certainty", "expires", "senderName")


@pytest.fixture(scope="module")
def app() -> Loaded:
    return loaded(CONFIG)


def alerts(app: Loaded, template_id: str, mode: str) -> dict[str, AlertRecord]:
    """An Alert from the template's examples, and an Update and a Cancel of it."""
    now = time.time()
    inputs = example_inputs(app.catalogue.get(template_id), now, app.config.timezone)

    async def plans() -> dict[str, AlertRecord]:
        first = await plan_alert(app.config, app.catalogue, template_id, inputs, mode=Mode(mode), now=now)
        records = {"Alert": first.alert}
        for msg_type in (MsgType.UPDATE, MsgType.CANCEL):
            plan = await plan_alert(app.config, app.catalogue, template_id, inputs, mode=Mode(mode), now=now,
                                    msg_type=msg_type, follow_up=FollowUp(first.alert, {}, {}, first.alert.channels))
            records[str(msg_type)] = plan.alert
        return records

    return asyncio.run(plans())


def document(app: Loaded, alert: AlertRecord, original: AlertRecord | None = None) -> bytes:
    template = app.catalogue.get(alert.template)
    return cap_document(alert, template, app.catalogue.gazetteer, app.config, original=original)


def text(element: Element, path: str) -> str:
    found = element.find(path, NS)
    assert found is not None and found.text is not None, path
    return found.text


def local_time(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


@pytest.mark.parametrize("mode", ["dry-run", "exercise", "live"])
@pytest.mark.parametrize("template_id", loaded(CONFIG).catalogue.ids())
def test_every_template_mode_and_msg_type_makes_a_valid_cap_document(app: Loaded, template_id: str, mode: str) -> None:
    records = alerts(app, template_id, mode)
    original = records["Alert"]
    config, gazetteer = app.config, app.catalogue.gazetteer
    template = app.catalogue.get(template_id)
    for msg_type, alert in records.items():
        doc = document(app, alert, original if msg_type != "Alert" else None)
        validate(doc)
        assert problems(doc) == [], (msg_type, problems(doc))  # Google's Public Alerts profile, on top of the XSD
        assert doc.startswith(b'<?xml version="1.0" encoding="UTF-8"?>') and doc.count(b"<?xml") == 1
        root = SafeET.fromstring(doc, forbid_dtd=True)
        assert text(root, "cap:identifier") == f"{config.sender}/{alert.id}"
        assert text(root, "cap:sender") == config.sender
        assert text(root, "cap:status") == STATUS[mode]
        assert text(root, "cap:msgType") == msg_type
        assert text(root, "cap:scope") == "Public"
        times = [text(root, "cap:sent")] + [text(i, "cap:expires") for i in root.findall("cap:info", NS)]
        for value in times:
            assert OFFSET_TIME.match(value) and "Z" not in value and value.endswith("+04:00"), value
        assert text(root, "cap:sent") == local_time(alert.sent_at, config.timezone)
        note = root.find("cap:note", NS)
        assert (note is not None and "exercise" in (note.text or "").lower()) == (mode == "exercise")

        refs = root.find("cap:references", NS)
        if msg_type == "Alert":
            assert refs is None
        else:
            assert refs is not None and refs.text is not None
            sender, ident, sent = refs.text.split(",")
            assert (sender, ident) == (config.sender, f"{config.sender}/{original.id}")
            assert sent == local_time(original.sent_at, config.timezone) and OFFSET_TIME.match(sent)

        infos = root.findall("cap:info", NS)
        assert [text(i, "cap:language") for i in infos] == ["ar-AE", "en-AE"]
        for field in SHARED:
            assert text(infos[0], f"cap:{field}") == text(infos[1], f"cap:{field}"), field
        assert text(infos[0], "cap:category") == template.cap["category"]
        assert text(infos[0], "cap:responseType") == template.cap["responseType"]
        assert [text(i, "cap:eventCode/cap:value") for i in infos] == [template_id, template_id]
        for info, lang in zip(infos, ("ar", "en"), strict=True):
            assert text(info, "cap:event") == template.event[lang]
            assert text(info, "cap:headline") == alert.forms[lang]["headline"]
            assert text(info, "cap:description") == alert.forms[lang]["long"]
            codes = alert.areas or ("DXB",)
            areas = info.findall("cap:area", NS)
            assert len(areas) == len(codes)
            for area, code in zip(areas, codes, strict=True):
                place = gazetteer.get(code)
                assert place is not None
                assert text(area, "cap:areaDesc") == place.name(lang)
                assert [g.text for g in area.findall("cap:geocode/cap:value", NS)] == [place.geocode[1]]
                assert [c.text for c in area.findall("cap:circle", NS)] == ([place.circle] if place.circle else [])
                assert [p.text for p in area.findall("cap:polygon", NS)] == ([place.polygon] if place.polygon else [])


def test_whole_emirate_area_with_polygon_when_the_alert_names_none(app: Loaded) -> None:
    alert = alerts(app, "cancel", "live")["Alert"]
    assert alert.areas == ()
    root = SafeET.fromstring(document(app, alert))
    area = root.find("cap:info/cap:area", NS)
    assert area is not None
    assert text(area, "cap:areaDesc") == "دبي"
    assert text(area, "cap:polygon").split()[0] == text(area, "cap:polygon").split()[-1]
    assert text(area, "cap:geocode/cap:value") == "DXB"


def test_without_dxb_in_the_gazetteer_the_area_is_named_dubai(app: Loaded) -> None:
    alert = alerts(app, "cancel", "live")["Alert"]
    places = {k: v for k, v in app.catalogue.gazetteer.places.items() if k != "DXB"}
    doc = cap_document(alert, app.catalogue.get("cancel"), Gazetteer(places), app.config)
    validate(doc)
    root = SafeET.fromstring(doc)
    assert [text(a, "cap:areaDesc") for a in root.findall("cap:info/cap:area", NS)] == ["دبي", "Dubai"]


def test_a_road_area_carries_the_geometry_of_the_areas_it_crosses(app: Loaded) -> None:
    alert = dataclasses.replace(alerts(app, "road_closure", "live")["Alert"], areas=("E44",))
    doc = document(app, alert)
    validate(doc)
    area = SafeET.fromstring(doc).findall("cap:info", NS)[1].find("cap:area", NS)
    assert area is not None
    assert text(area, "cap:areaDesc") == "Dubai-Hatta Road"
    assert text(area, "cap:circle") == "24.7960,56.1170 8.0"
    assert text(area, "cap:geocode/cap:value") == "DXB-HATTA"


def test_utc_is_written_as_plus_zero_never_z(app: Loaded) -> None:
    alert = alerts(app, "earthquake", "live")["Alert"]
    config = dataclasses.replace(app.config, timezone=ZoneInfo("UTC"))
    doc = cap_document(alert, app.catalogue.get("earthquake"), app.catalogue.gazetteer, config)
    validate(doc)
    root = SafeET.fromstring(doc)
    assert text(root, "cap:sent").endswith("+00:00") and b"Z<" not in doc


def test_follow_up_without_its_original_or_bad_sender_is_refused(app: Loaded) -> None:
    records = alerts(app, "flood_warning", "live")
    with pytest.raises(ValueError, match="pass that original"):
        document(app, records["Update"])
    with pytest.raises(ValueError, match="pass that original"):
        document(app, records["Cancel"], original=records["Update"])
    config = dataclasses.replace(app.config, sender="alerts example,gov")
    with pytest.raises(ValueError, match="without spaces, commas"):
        identifier(config, records["Alert"])
    with pytest.raises(ValueError, match="not 'earthquake'"):
        cap_document(records["Alert"], app.catalogue.get("earthquake"), app.catalogue.gazetteer, app.config)


@pytest.mark.parametrize(("old", "new", "complaint"), [
    (b"<status>Actual</status>", b"<status>Real</status>", "status"),
    (b"<sender>alerts.example.gov</sender>", b"", "sender"),
    (b"+04:00</sent>", b"Z</sent>", "sent"),
    (b"+04:00</sent>", b".250+04:00</sent>", "sent"),
    # Schema order: <language> must come before <category>.
    (b"<language>ar-AE</language>\n    <category>Geo</category>", b"<category>Geo</category><language>ar-AE</language>",
     "language"),
])
def test_a_broken_document_fails_validation_with_a_clear_error(
    app: Loaded, old: bytes, new: bytes, complaint: str
) -> None:
    doc = document(app, alerts(app, "earthquake", "live")["Alert"])
    validate(doc)
    broken = doc.replace(old, new, 1)
    assert broken != doc
    with pytest.raises(ValueError, match=r"not a valid CAP 1\.2 document:\n  line \d+: .*" + complaint):
        validate(broken)


def test_unsafe_or_malformed_xml_is_refused_before_validation() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "boom">]>'
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">&x;</alert>')
    with pytest.raises(ValueError, match="well-formed, safe"):
        validate(bomb)
    with pytest.raises(ValueError, match="well-formed, safe"):
        validate(b"<alert>")


def cli(db: Path, *args: str) -> list[str]:
    return ["--config", CONFIG, "--db", str(db), *args]


def test_cli_prints_a_valid_document_after_a_dry_run_fire(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    db = tmp_path / "t.db"
    assert main(cli(db, "fire", "road_closure", "--use-examples", "--dry-run", "--json")) == 0
    alert_id = orjson.loads(capsysbinary.readouterr().out)["alert_id"]
    assert main(cli(db, "cap", alert_id, "--validate")) == 0
    out = capsysbinary.readouterr().out
    validate(out)
    root = SafeET.fromstring(out)
    assert text(root, "cap:identifier").endswith(f"/{alert_id}")
    assert text(root, "cap:status") == "Test" and text(root, "cap:msgType") == "Alert"

    # A cancel (the real `broadcaster cancel`) names its original in <references>.
    assert main(cli(db, "cancel", alert_id, "--dry-run", "--json")) == 0
    cancel_id = orjson.loads(capsysbinary.readouterr().out)["alert_id"]
    assert main(cli(db, "cap", cancel_id, "--validate")) == 0
    root = SafeET.fromstring(capsysbinary.readouterr().out)
    assert text(root, "cap:msgType") == "Cancel"
    sender, ident, sent = text(root, "cap:references").split(",")
    assert sender == "alerts.example.gov" and ident == f"{sender}/{alert_id}" and OFFSET_TIME.match(sent)
    assert text(root, "cap:info/cap:eventCode/cap:value") == "cancel"


def test_cli_unknown_alert_id_exits_2(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(cli(tmp_path / "t.db", "cap", "20990101-000000-nope")) == 2
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert b"no alert with id '20990101-000000-nope'" in captured.err
