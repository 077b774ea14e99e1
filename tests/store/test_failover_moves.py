"""leases.move (SMS failover), on both backends: only pending deliveries move, in one transaction, each with a
'moved' row in its log; attempts keep the channel they were made on; moving back takes only the primary's own."""

from __future__ import annotations

from broadcaster.states import DeliveryState, Outcome
from broadcaster.store import Store
from broadcaster.store.records import AudienceCopy, MessageRecord
from tests.store.test_contract import OWNER, T0, alert, batches, claim, commit, result

S = DeliveryState
WHY = "moved from sms to sms-b: circuit open after 5 server errors in a row"


async def test_only_pending_deliveries_move_and_each_move_is_in_the_log(store: Store) -> None:
    await commit(store, phones=5)
    sending, unknown, retry = await claim(store, "sms", 3)
    await store.leases.record([result(unknown, S.UNKNOWN, outcome=Outcome.UNKNOWN, next_attempt_at=T0 + 5),
                               result(retry, S.PENDING, outcome=Outcome.RETRY, next_attempt_at=T0 + 50)])

    moved = await store.leases.move("sms", "sms-b", now=T0 + 2, detail=WHY, owner=OWNER, limit=100)

    assert moved == 3  # the retry and the two never tried; not the one being sent, not the unknown one
    assert await store.alerts.state_counts("A1") == {
        "sms": {"sending": 1, "unknown": 1}, "sms-b": {"pending": 3}, "tg": {"pending": 1}}
    rows = {d.id: d for d in await store.alerts.deliveries("A1")}
    assert rows[retry.delivery_id].moved_from == "sms" and rows[sending.delivery_id].moved_from is None
    log = [a async for a in store.alerts.attempts("A1")]
    assert [(a.channel, a.outcome) for a in log if a.recipient == retry.recipient] == [
        ("sms", Outcome.RETRY), ("sms-b", Outcome.MOVED)]
    assert {a.detail for a in log if a.outcome == Outcome.MOVED} == {WHY}
    # Due at once on the fallback, whatever backoff the primary had set; the text comes with it.
    again = await claim(store, "sms-b", 10, now=T0 + 2)
    assert len(again) == 3 and {c.text for c in again} == {"نص عربي"}
    assert [c.delivery_id for c in await claim(store, "sms", 10, now=T0 + 100)] == [unknown.delivery_id]


async def test_moving_back_takes_only_the_primarys_pending_deliveries(store: Store) -> None:
    await commit(store, phones=4)
    await store.leases.move("sms", "sms-b", now=T0, detail=WHY, owner=OWNER, limit=100)
    (sent,) = await claim(store, "sms-b", 1)
    await store.leases.record([result(sent, S.SENT, provider_id="IB1")])
    await store.leases.move("tg", "sms-b", now=T0, detail="test only", owner=OWNER, limit=100)

    back = await store.leases.move("sms-b", "sms", now=T0 + 3, detail="moved back", owner=OWNER, limit=2,
                                   home="sms")

    assert back == 2  # in batches: the limit holds
    assert await store.leases.move("sms-b", "sms", now=T0 + 3, detail="moved back", owner=OWNER, limit=10,
                                   home="sms") == 1
    counts = await store.alerts.state_counts("A1")
    assert counts["sms"] == {"pending": 3} and counts["sms-b"] == {"sent": 1, "pending": 1}  # the tg one stays
    rows = await store.alerts.deliveries("A1")
    assert all(d.home_channel == "sms" and d.moved_from is None for d in rows if d.channel_id == "sms")


async def test_a_follow_up_reaches_the_phones_failover_moved_on_the_primary_channel(store: Store) -> None:
    """An update or cancel goes to the original's audience of a channel, wherever failover sent each SMS."""
    await commit(store, phones=3)
    (first,) = await claim(store, "sms", 1)
    await store.leases.record([result(first, S.SENT, provider_id="SM1")])
    await store.leases.move("sms", "sms-b", now=T0, detail=WHY, owner=OWNER, limit=100)
    moved = await claim(store, "sms-b", 10)
    await store.leases.record([result(c, S.SENT, provider_id=f"IB{c.delivery_id}") for c in moved])
    assert await store.alerts.audience("A1", "sms", (S.SENT,)) == {"ar": 3}

    messages = [MessageRecord("sms/ar", "sms", "ar", "تحديث"), MessageRecord("sms/en", "sms", "en", "Update")]
    copy = AudienceCopy("sms", "A1", (S.SENT, S.SENDING, S.UNKNOWN), {"ar": "sms/ar", "en": "sms/en"}, "ar")
    assert await store.alerts.create(alert("U1", references="A1"), messages, batches(), [copy]) == (3, 0)
    rows = await store.alerts.deliveries("U1")
    assert {d.channel_id for d in rows} == {"sms"} and len({d.recipient for d in rows}) == 3
