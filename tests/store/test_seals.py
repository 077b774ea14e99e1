"""Alerts, messages, final states and finished attempts are append-only, and anchored to the audit chain.

Each test runs on SQLite and on PostgreSQL: the triggers refuse the edit; with the
triggers dropped (someone with write access), the anchors name what changed.
"""

from __future__ import annotations

import pytest

from broadcaster.anchors import Anchors, AnchorVerdict, plan_sha256, seal
from broadcaster.audit import AuditLog
from broadcaster.errors import IntegrityError
from broadcaster.states import DeliveryState, Outcome
from broadcaster.store import Store
from broadcaster.store.records import MessageRecord
from tests.store.test_contract import T0, alert, claim, commit, result

S = DeliveryState
MESSAGES = [MessageRecord("sms/ar", "sms", "ar", "نص عربي"), MessageRecord("tg/ar", "tg", "ar", "تلغرام",
                                                                             payload=b"\x00\x01")]


async def finished(store: Store) -> None:
    """Alert A1 committed and anchored as a fire is: three SMS (sent, failed, sent) and a Telegram post."""
    await commit(store, phones=3)
    await AuditLog(store.db).append("officer", "fire", {"alert_id": "A1", "alert_sha256": plan_sha256(
        alert(), MESSAGES)}, now=T0)
    a, b, c = await claim(store, "sms", 3)
    (tg,) = await claim(store, "tg", 1)
    await store.leases.record([result(a, S.SENT, provider_id="SM1"), result(b, S.FAILED, outcome=Outcome.FAILED),
                               result(c, S.SENT, provider_id="SM3"), result(tg, S.SENT, provider_id="77")])


async def verdict(store: Store) -> AnchorVerdict:
    anchors = Anchors()
    assert (await AuditLog(store.db).verify(observe=anchors.observe)).ok
    return await anchors.check(store)


async def unguarded(store: Store, *statements: str) -> None:
    """Run ``statements`` as someone who dropped every append-only trigger first."""
    if store.db.dialect == "postgresql":
        for table in ("alerts", "messages", "deliveries", "attempts", "seals"):
            await store.db.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    else:
        for trigger in ("alerts_no_update", "alerts_no_delete", "messages_no_update", "messages_no_delete",
                        "deliveries_final", "deliveries_no_delete", "attempts_finished", "attempts_no_delete",
                        "seals_no_update", "seals_no_delete"):
            await store.db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in statements:
        await store.db.execute(statement)


@pytest.mark.parametrize("edit", [
    "UPDATE alerts SET areas = '[\"AUH\"]'",
    "DELETE FROM alerts",
    "UPDATE messages SET text = 'مختلف'",
    "DELETE FROM messages",
    "UPDATE deliveries SET state = 'sent' WHERE state = 'failed'",
    "UPDATE deliveries SET provider_id = 'SM-forged' WHERE state = 'sent'",
    "DELETE FROM deliveries",
    "UPDATE attempts SET outcome = 'sent', detail = NULL WHERE outcome = 'failed'",
    "DELETE FROM attempts",
    "UPDATE seals SET deliveries = 0",
    "DELETE FROM seals",
], ids=["alert", "alert-delete", "message", "message-delete", "final-state", "provider-id", "delivery-delete",
        "attempt", "attempt-delete", "seal", "seal-delete"])
async def test_the_triggers_refuse_every_edit_of_what_is_anchored(store: Store, edit: str) -> None:
    await finished(store)
    assert await seal(store, "A1") is not None
    with pytest.raises(IntegrityError, match="append-only"):
        await store.db.execute(edit)
    assert await verdict(store) == AnchorVerdict(alerts=1, sealed=1)


async def test_postgresql_refuses_truncate_too(store: Store) -> None:
    if store.db.dialect != "postgresql":
        pytest.skip("SQLite has no TRUNCATE")
    await finished(store)
    for table in ("attempts", "deliveries", "messages", "alerts", "seals"):
        with pytest.raises(IntegrityError, match="append-only"):
            await store.db.execute(f"TRUNCATE {table} CASCADE")


async def test_what_is_still_open_moves_freely_and_a_late_outcome_lands_on_unknown(store: Store) -> None:
    await commit(store, phones=1)
    (stale,) = await claim(store, "sms", 1, lease_s=5, owner="slow:1:x")
    assert await store.leases.recover(T0 + 10, set()) == 1  # closed as unknown
    (fresh,) = await claim(store, "sms", 1, now=T0 + 10)
    await store.leases.record([result(fresh, S.SENT, outcome=Outcome.RECONCILED, at=T0 + 12, provider_id="SM9")])
    await store.leases.record([result(stale, S.SENT, at=T0 + 13, provider_id="SM9")])  # the stalled node's answer
    await store.leases.record([result(fresh, S.FAILED, outcome=Outcome.FAILED, at=T0 + 14)])  # never overwrites
    assert [a.outcome async for a in store.alerts.attempts("A1")] == [Outcome.SENT, Outcome.RECONCILED]
    assert (await store.alerts.state_counts("A1"))["sms"] == {"sent": 1}


async def test_an_alert_is_sealed_once_and_only_when_every_delivery_is_final(store: Store) -> None:
    await commit(store, phones=2)
    await AuditLog(store.db).append("officer", "fire", {"alert_id": "A1", "alert_sha256": plan_sha256(
        alert(), MESSAGES)}, now=T0)
    a, b = await claim(store, "sms", 2)
    await store.leases.record([result(a, S.SENT)])
    assert await seal(store, "A1") is None  # one SMS still sending, the Telegram post pending
    assert await verdict(store) == AnchorVerdict(alerts=1, delivering=1)
    await store.leases.record([result(b, S.SENT)])
    await store.leases.expire(T0 + 7200)  # the Telegram post never went out
    assert await verdict(store) == AnchorVerdict(alerts=1, unsealed=1)
    row = await seal(store, "A1")
    assert row is not None and row.action == "alert_sealed" and row.actor == "broadcaster"
    assert await seal(store, "A1") is None
    assert await verdict(store) == AnchorVerdict(alerts=1, sealed=1)


async def test_an_edited_alert_or_message_is_named(store: Store) -> None:
    await finished(store)
    await unguarded(store, "UPDATE messages SET text = 'نص آخر' WHERE key = 'sms/ar'")
    found = await verdict(store)
    assert not found.ok and found.alert_id == "A1" and found.delivery_id is None
    assert "does not match its commit anchor (audit row 1)" in found.problem


async def test_an_edited_final_state_names_the_delivery(store: Store) -> None:
    await finished(store)
    await seal(store, "A1")
    failed = next(d for d in await store.alerts.deliveries("A1") if d.state == S.FAILED)
    await unguarded(store, f"UPDATE deliveries SET state = 'sent', last_error = NULL WHERE id = {failed.id}")
    found = await verdict(store)
    assert not found.ok and (found.alert_id, found.delivery_id) == ("A1", failed.id)
    assert f"delivery {failed.id} of alert A1 (sms to {failed.recipient}) no longer matches its seal" in found.problem


async def test_an_edited_attempt_a_deleted_delivery_and_an_edited_seal_are_named(store: Store) -> None:
    await finished(store)
    await seal(store, "A1")
    first, second, *_ = await store.alerts.deliveries("A1")
    await unguarded(store, f"UPDATE attempts SET detail = 'all good' WHERE delivery_id = {second.id}")
    assert (await verdict(store)).delivery_id == second.id
    await unguarded(store, f"DELETE FROM attempts WHERE delivery_id = {first.id}",
                    f"DELETE FROM deliveries WHERE id = {first.id}")
    found = await verdict(store)
    assert found.delivery_id == first.id and "gone from the database" in found.problem
    await unguarded(store, "UPDATE seals SET digests = 'forged'")
    assert "the seal was edited" in (await verdict(store)).problem


async def test_an_alert_inserted_by_hand_or_deleted_is_named(store: Store) -> None:
    await finished(store)
    await commit(store, "FORGED", phones=1)  # committed without its audit row
    found = await verdict(store)
    assert found.alert_id == "FORGED" and "not in the audit log" in found.problem
    await unguarded(store, "DELETE FROM attempts", "DELETE FROM deliveries", "DELETE FROM messages",
                    "DELETE FROM alerts WHERE id = 'FORGED'", "DELETE FROM alerts")
    found = await verdict(store)
    assert found.alert_id == "A1" and "in the audit log (row 1) but not in the database" in found.problem
