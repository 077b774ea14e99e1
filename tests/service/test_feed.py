"""The public CAP feed: live alerts only, each document valid against the CAP 1.2 schema."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import orjson
import pytest

from broadcaster.cap import validate
from tests.engine.providers import Providers
from tests.service.support import PUBLIC_URL, REPO, Api, ManualClock, rewrite_config, serving, without_verify_line

ATOM = {"a": "http://www.w3.org/2005/Atom"}
CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")


def text(element: Element, path: str) -> str:
    found = element.find(path, ATOM)
    assert found is not None and found.text, path
    return found.text


async def fire_all_modes(api: Api) -> dict[str, str]:
    ids = {}
    for name, template, mode in (("live", "road_closure", "live"), ("exercise", "flood_warning", "exercise"),
                                 ("dry-run", "earthquake", "dry-run")):
        status, body = await api.fire("officer", template=template, mode=mode)
        assert status == 202, body
        ids[name] = body["alert_id"]
    await api.settle()
    if isinstance(api.clock, ManualClock):
        # Newer by the clock: the feed breaks sent_at ties by alert id, not by insertion order (no rowid everywhere).
        api.clock.advance(1.0)
    status, body = await api.post(f"/api/alerts/{ids['live']}/cancel", {"mode": "live", "confirm": "cancel"})
    assert status == 202, body
    ids["cancel"] = body["alert_id"]
    await api.settle()
    return ids


async def test_the_feed_lists_live_alerts_and_every_document_validates(clocked: Api) -> None:
    api = clocked
    ids = await fire_all_modes(api)
    status, raw = await api.get("/cap/feed.atom", None)
    assert status == 200
    feed = SafeET.fromstring(raw)
    assert feed.tag == "{http://www.w3.org/2005/Atom}feed"
    # RFC 4287: a feed has an id, a title, an updated time and a self link; so has each entry (alternate link).
    assert text(feed, "a:id") == f"{PUBLIC_URL}/cap/feed.atom"
    assert text(feed, "a:title") and RFC3339.match(text(feed, "a:updated"))
    assert text(feed, "a:author/a:name") == "alerts.example.gov"
    entries = feed.findall("a:entry", ATOM)
    links = []
    for entry in entries:
        assert text(entry, "a:id").startswith("urn:cap:alerts.example.gov/")
        assert RFC3339.match(text(entry, "a:updated")) and text(entry, "a:title")
        (link,) = entry.findall("a:link[@rel='alternate']", ATOM)
        assert link.get("type") == "application/cap+xml"
        links.append(link.get("href"))
    # Newest first; exercise and dry-run never appear.
    assert links == [f"{PUBLIC_URL}/cap/{ids['cancel']}.xml", f"{PUBLIC_URL}/cap/{ids['live']}.xml"]
    # The original says it was cancelled, and links to its cancel; the cancel itself is not marked so.
    cancel_entry, original_entry = entries
    assert text(original_entry, "a:title").startswith("أُلغي · CANCELLED: ")
    assert f"This alert was cancelled ({ids['cancel']})" in text(original_entry, "a:summary")
    (related,) = original_entry.findall("a:link[@rel='related']", ATOM)
    assert related.get("href") == f"{PUBLIC_URL}/cap/{ids['cancel']}.xml"
    assert "cancelled" in [c.get("term") for c in original_entry.findall("a:category", ATOM)]
    assert text(cancel_entry, "a:title").startswith("إلغاء · Cancel: ")
    assert "cancelled" not in [c.get("term") for c in cancel_entry.findall("a:category", ATOM)]
    for alert_id, msg_type in ((ids["live"], "Alert"), (ids["cancel"], "Cancel")):
        async with api.client.get(f"/cap/{alert_id}.xml") as response:
            assert response.status == 200
            assert response.content_type == "application/cap+xml"
            document = await response.read()
        validate(document)
        root = SafeET.fromstring(document)
        assert root.findtext("cap:status", namespaces=CAP) == "Actual"
        assert root.findtext("cap:msgType", namespaces=CAP) == msg_type
        assert [i.findtext("cap:language", namespaces=CAP) for i in root.findall("cap:info", CAP)] == [
            "ar-AE", "en-AE"]


async def test_exercise_and_dry_run_documents_are_not_public(api: Api) -> None:
    ids = await fire_all_modes(api)
    for alert_id in (ids["exercise"], ids["dry-run"], "no-such-alert"):
        status, _ = await api.get(f"/cap/{alert_id}.xml", None)
        assert status == 404, alert_id
    status, _ = await api.get("/cap/../etc/passwd.xml", None)
    assert status == 404


async def test_expired_alerts_leave_the_feed_but_keep_their_document(clocked: Api) -> None:
    api = clocked
    status, body = await api.fire("officer", mode="live")
    await api.settle()
    assert isinstance(api.clock, ManualClock)
    api.clock.advance(4 * 24 * 3600)  # a road closure expires when it ends (its example: 05:00 two days on)
    status, raw = await api.get("/cap/feed.atom", None)
    assert SafeET.fromstring(raw).findall("a:entry", ATOM) == []
    status, document = await api.get(f"/cap/{body['alert_id']}.xml", None)
    assert status == 200
    validate(document)


async def test_without_a_public_url_nothing_is_published_and_the_host_header_is_never_used(
    providers: Providers, caplog: pytest.LogCaptureFixture
) -> None:
    rewrite_config(providers, public_url=None, templates=without_verify_line(providers))
    async with serving(providers) as api:
        assert "the CAP feed is not published" in caplog.text  # said when serve starts
        status, body = await api.fire("officer", mode="live")
        assert status == 202
        await api.settle()
        for path in ("/cap/feed.atom", f"/cap/{body['alert_id']}.xml"):
            async with api.client.get(path, headers={"Host": "evil.example"}) as response:
                assert response.status == 503, path
                text = await response.text()
            assert "public_url is not set" in text and "evil.example" not in text


async def test_a_published_document_stays_as_fired_when_its_template_is_edited_or_deleted(
    providers: Providers, tmp_path: Path
) -> None:
    templates = tmp_path / "templates-copy"
    shutil.copytree(REPO / "templates", templates)
    rewrite_config(providers, templates=templates, public_url=PUBLIC_URL)
    async with serving(providers) as api:
        status, body = await api.fire("officer", mode="live")
        assert status == 202, body
        await api.settle()
        path = f"/cap/{body['alert_id']}.xml"
        status, as_fired = await api.get(path, None)
        assert status == 200
        template = templates / "road_closure.toml"
        template.write_text(template.read_text(encoding="utf-8").replace('"Moderate"', '"Extreme"'),
                            encoding="utf-8")
        assert await api.get(path, None) == (200, as_fired)
        template.unlink()
        assert await api.get(path, None) == (200, as_fired)
        root = SafeET.fromstring(as_fired)
        assert root.findtext("cap:info/cap:severity", namespaces=CAP) == "Moderate"
        assert root.findtext("cap:info/cap:web", namespaces=CAP) == f"{PUBLIC_URL}{path}"


async def test_an_alert_whose_text_xml_cannot_carry_never_takes_the_feed_down(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # A live alert stored with a control character in its headline (a gazetteer name from before names were
    # checked): its own document is a 500, but the feed still answers for everyone, with the other alerts.
    ids = []
    for template in ("road_closure", "flood_warning"):
        status, body = await api.fire("officer", template=template, mode="live")
        assert status == 202, body
        ids.append(body["alert_id"])
    await api.settle()
    good, bad = ids
    alert = await api.app.store.alerts.get(bad)
    forms = {lang: {**texts, "headline": texts["headline"] + "\x07"} for lang, texts in alert.forms.items()}
    # Alerts are append-only (migration 0006): an old row is forged as someone with write access would.
    await api.app.store.db.execute("DROP TRIGGER IF EXISTS alerts_no_update")
    await api.app.store.db.execute("UPDATE alerts SET forms = ? WHERE id = ?", (orjson.dumps(forms).decode(), bad))
    status, raw = await api.get("/cap/feed.atom", None)
    assert status == 200
    links = [link.get("href") for link in SafeET.fromstring(raw).findall("a:entry/a:link", ATOM)]
    assert links == [f"{PUBLIC_URL}/cap/{good}.xml"]
    assert f"alert {bad} is left out of the public feed" in caplog.text
    # Its CAP document was built and stored when it was fired, before the forgery: it is served as it was.
    status, document = await api.get(f"/cap/{bad}.xml", None)
    assert status == 200 and b"\x07" not in document
    validate(document)


async def test_a_cancel_of_an_update_marks_the_whole_thread_cancelled_in_the_feed(clocked: Api) -> None:
    api = clocked
    status, body = await api.fire("officer", mode="live")
    assert status == 202, body
    original = body["alert_id"]
    await api.settle()
    assert isinstance(api.clock, ManualClock)
    api.clock.advance(1)
    status, body = await api.post(f"/api/alerts/{original}/update", {"variables": {}, "mode": "live",
                                                                      "confirm": "road_closure"})
    assert status == 202, body
    update = body["alert_id"]
    await api.settle()
    api.clock.advance(1)
    status, body = await api.post(f"/api/alerts/{update}/cancel", {"mode": "live", "confirm": "cancel"})
    assert status == 202, body
    cancel = body["alert_id"]
    await api.settle()
    _, raw = await api.get("/cap/feed.atom", None)
    titles = {text(e, "a:id").rpartition("/")[2]: text(e, "a:title") for e in SafeET.fromstring(raw).findall(
        "a:entry", ATOM)}
    assert set(titles) == {original, update, cancel}
    assert titles[original].startswith("أُلغي · CANCELLED: ") and titles[update].startswith("أُلغي · CANCELLED: ")
    status, document = await api.get(f"/cap/{cancel}.xml", None)
    refs = SafeET.fromstring(document).findtext("cap:references", namespaces=CAP) or ""
    assert [entry.split(",")[1].rpartition("/")[2] for entry in refs.split()] == [original, update]


async def test_an_alert_from_before_stored_documents_is_410_once_its_template_changed(
    providers: Providers, tmp_path: Path
) -> None:
    templates = tmp_path / "templates-copy"
    shutil.copytree(REPO / "templates", templates)
    rewrite_config(providers, templates=templates, public_url=PUBLIC_URL)
    async with serving(providers) as api:
        status, body = await api.fire("officer", mode="live")
        assert status == 202, body
        await api.settle()
        path = f"/cap/{body['alert_id']}.xml"
        # As committed before migration 0008: no stored document (forged as someone with write access would).
        await api.app.store.db.execute("DROP TRIGGER IF EXISTS alerts_no_update")
        await api.app.store.db.execute("UPDATE alerts SET cap = NULL WHERE id = ?", (body["alert_id"],))
        status, rebuilt = await api.get(path, None)
        assert status == 200  # its template is unchanged: rebuilt as it was
        validate(rebuilt)
        template = templates / "road_closure.toml"
        template.write_text(template.read_text(encoding="utf-8").replace('"Moderate"', '"Extreme"'),
                            encoding="utf-8")
        status, answer = await api.get(path, None)
        assert status == 410 and answer["error"] == "cap_not_stored"
        assert "cannot be rebuilt as it was fired" in answer["message"]
