"""An alert's CAP document as an emergency officer relies on it: built and stored when it is fired, expiring
with the alert's own end time, referencing its whole thread, and passing Google's Public Alerts profile."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
import pytest

from broadcaster.app.context import App, open_app
from broadcaster.app.follow_up import plan_cancel, plan_update
from broadcaster.cap import validate
from broadcaster.cli import main
from broadcaster.engine.outbox import commit, plan_alert
from broadcaster.states import Mode
from broadcaster.store.records import AlertRecord
from broadcaster.templates.variables import example_inputs
from tests.cap.google_profile import problems

REPO = Path(__file__).resolve().parents[2]
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
DUBAI = ZoneInfo("Asia/Dubai")  # channels.toml's timezone
FOLLOWED = ("all_clear", "dust_storm", "earthquake", "flood_warning", "road_closure")  # the cancel's choices


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The sample channels.toml, templates and recipient lists, copied so that a test may edit a template."""
    for folder in ("templates", "recipients", "var/cap-signing"):  # the CAP signing key it names, too
        shutil.copytree(REPO / folder, tmp_path / folder)
    shutil.copy(REPO / "channels.toml", tmp_path / "channels.toml")
    return tmp_path / "channels.toml"


def run(site: Path, fn: Any) -> Any:
    """Await ``fn(app)`` with the site's app open on a database of its own."""
    async def go() -> Any:
        async with open_app(str(site), str(site.parent / "t.db")) as app:
            return await fn(app)

    return asyncio.run(go())


async def fire(app: App, template_id: str, now: float, **given: str) -> AlertRecord:
    inputs = example_inputs(app.catalogue.get(template_id), now, app.config.timezone)
    inputs.update({name: {"ar": value, "en": value} for name, value in given.items()})
    plan = await plan_alert(app.config, app.catalogue, template_id, inputs, mode=Mode.LIVE, now=now)
    await commit(app.store, plan)
    return plan.alert


async def update(app: App, original: AlertRecord, now: float, **given: str) -> AlertRecord:
    overrides = {name: {"ar": value, "en": value} for name, value in given.items()}
    plan = await plan_update(app, original.id, overrides, mode=Mode.LIVE, now=now)
    await commit(app.store, plan)
    return plan.alert


async def cancel(app: App, original: AlertRecord, now: float) -> AlertRecord:
    plan = await plan_cancel(app, original.id, mode=Mode.LIVE, now=now)
    await commit(app.store, plan)
    return plan.alert


def root(alert: AlertRecord) -> Any:
    assert alert.cap is not None
    return SafeET.fromstring(alert.cap.encode(), forbid_dtd=True)


def info(alert: AlertRecord, field: str) -> list[str | None]:
    return [i.findtext(f"cap:{field}", namespaces=NS) for i in root(alert).findall("cap:info", NS)]


def at(app: App, now: float, hours: float) -> str:
    """A local time ``hours`` from ``now``, whole minutes, as an officer types it."""
    moment = datetime.fromtimestamp(now, app.config.timezone) + timedelta(hours=hours)
    return moment.replace(second=0, microsecond=0).isoformat()


def references(*originals: AlertRecord) -> str:
    """``<references>`` naming ``originals`` in order: ``sender,identifier,sent`` separated by spaces."""
    return " ".join(f"alerts.example.gov,alerts.example.gov/{a.id},"
                    f"{datetime.fromtimestamp(a.sent_at, DUBAI).isoformat(timespec='seconds')}" for a in originals)


@pytest.mark.parametrize("template_id", FOLLOWED)
def test_an_alert_its_update_and_the_cancel_of_the_update_pass_the_xsd_and_google_profile(
    site: Path, template_id: str
) -> None:
    async def thread(app: App) -> list[AlertRecord]:
        now = time.time()
        first = await fire(app, template_id, now)
        second = await update(app, first, now + 60)
        third = await cancel(app, second, now + 120)
        return [await app.store.alerts.get(a.id) for a in (first, second, third)]

    alerts = run(site, thread)
    identifiers = [root(a).findtext("cap:identifier", namespaces=NS) for a in alerts]
    assert len(set(identifiers)) == 3  # Google: an identifier is never reused
    for alert in alerts:
        assert alert.cap is not None
        validate(alert.cap.encode())
        assert problems(alert.cap.encode()) == [], (alert.msg_type, problems(alert.cap.encode()))
        web = f"https://alerts.example.gov/cap/{alert.id}.xml"
        assert info(alert, "web") == [web, web]
        assert info(alert, "contact") == ["هيئة الطوارئ والأزمات", "Emergency and Crisis Authority"]  # authority
        assert all(info(alert, "instruction"))


def test_a_cancel_of_an_update_references_the_update_and_the_unexpired_original_with_their_values(
    site: Path,
) -> None:
    async def thread(app: App) -> tuple[AlertRecord, ...]:
        now = time.time()
        first = await fire(app, "flood_warning", now, until=at(app, now, 3))
        second = await update(app, first, now + 60, until=at(app, now, 5))
        return first, second, await cancel(app, second, now + 120)

    first, second, cancelled = run(site, thread)
    assert root(second).findtext("cap:references", namespaces=NS) == references(first)
    assert root(cancelled).findtext("cap:references", namespaces=NS) == references(first, second)
    # A cancel carries what it cancels: the flood's category, event, urgency, severity and certainty.
    for field in ("category", "event", "urgency", "severity", "certainty"):
        assert info(cancelled, field) == info(first, field), field
    assert info(cancelled, "urgency") == ["Expected", "Expected"]
    assert info(cancelled, "responseType") == ["None", "None"]


def test_an_expired_original_is_no_longer_referenced(site: Path) -> None:
    async def thread(app: App) -> tuple[AlertRecord, ...]:
        now = time.time()
        first = await fire(app, "flood_warning", now, until=at(app, now, 1))
        later = now + 2 * 3600  # the original expired an hour ago
        second = await update(app, first, later, until=at(app, later, 2))
        return first, second, await cancel(app, second, later + 60)

    first, second, cancelled = run(site, thread)
    assert first.id in (root(second).findtext("cap:references", namespaces=NS) or "")  # what it follows, always
    refs = root(cancelled).findtext("cap:references", namespaces=NS) or ""
    assert second.id in refs and first.id not in refs


def test_expires_follows_the_alerts_own_end_time(site: Path) -> None:
    async def alerts(app: App) -> tuple[Any, ...]:
        now = time.time()
        until = at(app, now, 3)
        flood = await fire(app, "flood_warning", now, until=until)
        later = at(app, now, 7)
        extended = await update(app, flood, now + 60, until=later)
        quake = await fire(app, "earthquake", now)  # no end time: expires_hours
        return until, flood, later, extended, quake, now, app.catalogue.get("earthquake").expires_hours

    until, flood, later, extended, quake, now, quake_hours = run(site, alerts)
    assert flood.expires_at == datetime.fromisoformat(until).timestamp()
    assert info(flood, "expires") == [until, until]
    assert extended.expires_at == datetime.fromisoformat(later).timestamp()
    assert info(extended, "expires") == [later, later]
    assert quake.expires_at == now + quake_hours * 3600


def cli(site: Path, *args: str) -> list[str]:
    return ["--config", str(site), "--db", str(site.parent / "t.db"), *args]


def test_the_public_document_is_the_one_fired_whatever_the_template_says_today(
    site: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    fired = run(site, lambda app: fire(app, "road_closure", time.time()))
    assert main(cli(site, "cap", fired.id, "--validate")) == 0
    as_fired = capsysbinary.readouterr().out
    assert as_fired == fired.cap.encode()

    template = site.parent / "templates" / "road_closure.toml"
    text = template.read_text(encoding="utf-8")
    edited = text.replace('severity = "Moderate"', 'severity = "Extreme"').replace('headline = "{road} closed',
                                                                                 'headline = "Closed: {road}')
    assert edited != text
    template.write_text(edited, encoding="utf-8")
    assert main(cli(site, "cap", fired.id)) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == as_fired and b"changed since" not in captured.err

    template.unlink()
    assert main(cli(site, "cap", fired.id, "--validate")) == 0
    assert capsysbinary.readouterr().out == as_fired


def test_an_alert_from_before_stored_documents_is_rebuilt_only_from_its_unchanged_template(
    site: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    async def legacy(app: App) -> AlertRecord:
        now = time.time()
        inputs = example_inputs(app.catalogue.get("road_closure"), now, app.config.timezone)
        plan = await plan_alert(app.config, app.catalogue, "road_closure", inputs, mode=Mode.LIVE, now=now)
        plan.alert = dataclasses.replace(plan.alert, cap=None)  # as committed before migration 0008
        await commit(app.store, plan)
        return plan.alert

    old = run(site, legacy)
    assert main(cli(site, "cap", old.id, "--validate")) == 0
    assert b"<identifier>alerts.example.gov/" + old.id.encode() in capsysbinary.readouterr().out

    template = site.parent / "templates" / "road_closure.toml"
    template.write_text(template.read_text(encoding="utf-8").replace('"Moderate"', '"Extreme"'), encoding="utf-8")
    assert main(cli(site, "cap", old.id)) == 2
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert b"cannot be rebuilt as it was fired" in captured.err and b"has changed" in captured.err


def good_document(site: Path) -> bytes:
    cap = run(site, lambda app: fire(app, "flood_warning", time.time())).cap
    assert cap is not None and problems(cap.encode()) == []
    return bytes(cap.encode())


@pytest.mark.parametrize(("pattern", "replacement", "complaint"), [
    (r"\s*<web>.*?</web>", "", "<web>: required"),
    (r"<web>https://", "<web>http://", "<web>: required, an absolute https URL"),
    (r"<urgency>\w+</urgency>", "<urgency>Unknown</urgency>", "<urgency>: must be known"),
    (r"<certainty>\w+</certainty>", "<certainty>Unknown</certainty>", "<certainty>: must be known"),
    (r"\s*<instruction>.*?</instruction>", "", "<instruction>: required"),
    (r"\s*<contact>.*?</contact>", "", "<contact>: required"),
    (r"\s*<expires>.*?</expires>", "", "<expires>: required"),
    (r"\s*<description>.*?</description>", "", "<description>: required"),
    (r"<msgType>Alert</msgType>", "<msgType>Update</msgType>", "<references>: required for msgType Update"),
    (r"<sender>[^<]*</sender>", "<sender>alerts</sender>", "<sender> 'alerts'"),
    (r"<headline>", "<headline>" + "x" * 141, "over Google's 140"),
    (r"<areaDesc>[^<]*</areaDesc>", "<areaDesc></areaDesc>", "<areaDesc> is required"),
    (r"\s*<(polygon|circle)>[^<]*</(polygon|circle)>|\s*<geocode>.*?</geocode>", "",
     "needs a <polygon>, <circle> or <geocode>"),
], ids=["web", "web-http", "urgency", "certainty", "instruction", "contact", "expires", "description",
        "references", "sender", "headline", "area-desc", "area-geometry"])
def test_each_profile_rule_catches_a_document_that_breaks_it(
    site: Path, pattern: str, replacement: str, complaint: str
) -> None:
    doc = good_document(site).decode()
    broken = re.sub(pattern, replacement, doc, flags=re.DOTALL)
    assert broken != doc
    found = problems(broken.encode())
    assert any(complaint in p for p in found), found


def test_a_references_entry_must_be_sender_identifier_sent(site: Path) -> None:
    doc = good_document(site).decode()
    update = doc.replace("<msgType>Alert</msgType>", "<msgType>Update</msgType>")
    sent = doc.split("<sent>")[1].split("</sent>")[0]
    good = update.replace("<scope>Public</scope>", "<scope>Public</scope>\n  <references>alerts.example.gov,"
                          f"alerts.example.gov/earlier,{sent}</references>")
    assert problems(good.encode()) == []
    for entries, complaint in ((f"alerts.example.gov/earlier,{sent}", "must be sender,identifier,sent"),
                               ("alerts.example.gov,alerts.example.gov/earlier,yesterday", "must be sender"),
                               (f"a,b,{sent} a,b,{sent}", "listed twice")):
        bad = update.replace("<scope>Public</scope>", f"<scope>Public</scope>\n  <references>{entries}</references>")
        assert any(complaint in p for p in problems(bad.encode())), entries
