"""The CAP document stored with each alert (migration 0008), and an alert's thread; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from broadcaster.anchors import plan_sha256
from broadcaster.audit import AuditLog
from broadcaster.errors import IntegrityError
from broadcaster.states import MsgType
from broadcaster.store import Store
from broadcaster.store.records import AlertRecord, MessageRecord, NewDelivery
from tests.store.test_contract import T0, alert, batches
from tests.store.test_seals import unguarded, verdict

DOCUMENT = '<?xml version="1.0" encoding="UTF-8"?>\n<alert>تنبيه · alert</alert>\n'
MESSAGES = [MessageRecord("tg/ar", "tg", "ar", "تلغرام")]


async def create(store: Store, record: AlertRecord) -> AlertRecord:
    await store.alerts.create(record, MESSAGES, batches([NewDelivery("tg", "tg/ar", "ar")]))
    await AuditLog(store.db).append("officer", "fire", {"alert_id": record.id,
                                                        "alert_sha256": plan_sha256(record, MESSAGES)}, now=T0)
    return record


async def test_the_cap_document_is_committed_with_the_alert_and_read_back_as_stored(store: Store) -> None:
    stored = await create(store, dataclasses.replace(alert(), cap=DOCUMENT))
    assert (await store.alerts.get("A1")).cap == DOCUMENT
    assert await store.alerts.get("A1") == stored
    assert [a.cap for a in await store.alerts.recent()] == [DOCUMENT]
    with pytest.raises(IntegrityError, match="append-only"):
        await store.db.execute("UPDATE alerts SET cap = ? WHERE id = ?", ("<alert>forged</alert>", "A1"))
    assert (await verdict(store)).ok


async def test_an_edited_or_removed_cap_document_is_named_by_audit_verify(store: Store) -> None:
    await create(store, dataclasses.replace(alert(), cap=DOCUMENT))
    await unguarded(store, "UPDATE alerts SET cap = NULL")
    found = await verdict(store)
    assert not found.ok and found.alert_id == "A1"
    assert "does not match its commit anchor" in found.problem


async def test_an_alert_from_before_stored_documents_keeps_its_anchor(store: Store) -> None:
    # Committed as before migration 0008 (no document): its anchor hash is the one it always had.
    await create(store, alert())
    assert (await store.alerts.get("A1")).cap is None
    assert (await verdict(store)).ok


async def test_the_thread_is_every_unexpired_alert_linked_to_it_oldest_first(store: Store) -> None:
    def linked(alert_id: str, refs: str | None, sent: float, expires: float) -> AlertRecord:
        return dataclasses.replace(alert(alert_id, references=refs, expires_at=expires), sent_at=sent,
                                   msg_type=MsgType.UPDATE if refs else MsgType.ALERT)

    await create(store, linked("A", None, T0, T0 + 100))  # the original, expired at T0 + 100
    await create(store, linked("U1", "A", T0 + 10, T0 + 1000))
    await create(store, linked("U2", "U1", T0 + 20, T0 + 1000))  # an update of the update
    await create(store, linked("U3", "A", T0 + 30, T0 + 1000))  # a second update of the original
    await create(store, linked("OTHER", None, T0 + 5, T0 + 1000))  # another thread
    assert [a.id for a in await store.alerts.thread("U2", T0 + 50)] == ["A", "U1", "U2", "U3"]
    assert [a.id for a in await store.alerts.thread("A", T0 + 50)] == ["A", "U1", "U2", "U3"]
    assert [a.id for a in await store.alerts.thread("U2", T0 + 200)] == ["U1", "U2", "U3"]  # A has expired
    assert [a.id for a in await store.alerts.thread("OTHER", T0 + 50)] == ["OTHER"]
