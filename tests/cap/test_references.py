"""``<references>`` of an update or cancel, for any thread: every alert named once, oldest first, in Google's
``sender,identifier,sent`` form, and read back by the feed as the alerts the cancel cancels (property tests)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from functools import cache
from pathlib import Path

import defusedxml.ElementTree as SafeET
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.cap import cap_document, validate
from broadcaster.engine.outbox import FollowUp, plan_alert
from broadcaster.service.feed import cancelled
from broadcaster.states import Mode, MsgType
from broadcaster.store.records import AlertRecord
from broadcaster.templates.variables import example_inputs
from tests.cap.google_profile import problems
from tests.support import Loaded, loaded

CONFIG = Path(__file__).resolve().parents[2] / "channels.toml"
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
NOW = time.time()


@cache
def base() -> tuple[Loaded, AlertRecord, AlertRecord]:
    """A planned flood warning and a cancel of it (nothing stored), to vary their ids and times."""
    app = loaded(CONFIG)

    async def plans() -> tuple[AlertRecord, AlertRecord]:
        inputs = example_inputs(app.catalogue.get("flood_warning"), NOW, app.config.timezone)
        first = await plan_alert(app.config, app.catalogue, "flood_warning", inputs, mode=Mode.LIVE, now=NOW)
        cancel_inputs = example_inputs(app.catalogue.get("cancel"), NOW, app.config.timezone) | {
            "original_event": {"ar": "flood_warning", "en": "flood_warning"}}
        second = await plan_alert(app.config, app.catalogue, "cancel", cancel_inputs, mode=Mode.LIVE, now=NOW,
                                  msg_type=MsgType.CANCEL, follow_up=FollowUp(first.alert, {}, {}, ("x-authority",)))
        return first.alert, second.alert

    return (app, *asyncio.run(plans()))


ALERT_ID = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(ALERT_ID, st.integers(1, 30 * 86400)), min_size=1, max_size=6, unique_by=lambda t: t[0]),
       st.data())
def test_a_cancel_references_every_alert_of_its_thread_once_oldest_first(
    thread: list[tuple[str, int]], data: st.DataObject
) -> None:
    app, first, cancel_plan = base()
    records = [dataclasses.replace(first, id=alert_id, sent_at=NOW - age) for alert_id, age in thread]
    original = data.draw(st.sampled_from(records))
    cancel = dataclasses.replace(cancel_plan, id="C-" + original.id, references=original.id)
    doc = cap_document(cancel, app.catalogue.get("cancel"), app.catalogue.gazetteer, app.config, original=original,
                       thread=[*records, original])  # the original may come twice: it is named once
    validate(doc)
    assert problems(doc) == []
    refs = SafeET.fromstring(doc).findtext("cap:references", namespaces=NS) or ""
    expected = [a.id for a in sorted(records, key=lambda a: (a.sent_at, a.id))]
    assert [entry.split(",")[1] for entry in refs.split()] == [f"alerts.example.gov/{i}" for i in expected]
    stored = dataclasses.replace(cancel, cap=doc.decode())
    assert set(cancelled(stored)) == set(expected) and cancelled(stored)[0] == original.id
