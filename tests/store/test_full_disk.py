"""A full disk: the store says "database or disk is full" (StoreFull), keeps nothing of the failed call, and
nothing is lost once space is back. SQLite is filled for real (``max_page_count``); PostgreSQL's SQLSTATE 53100
is mapped by the same rule (tests/store/test_pg_errors.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from broadcaster.errors import StoreFull
from broadcaster.states import DeliveryState, Mode, MsgType, Outcome
from broadcaster.store import Store, opened
from broadcaster.store.records import AlertRecord, AttemptResult, MessageRecord, NewDelivery

T0 = 1_800_000_000.0
PHONES = 3_000


def alert(alert_id: str) -> AlertRecord:
    return AlertRecord(id=alert_id, template="flood_warning", template_hash="h", mode=Mode.LIVE, msg_type=MsgType.ALERT,
                       references=None, sent_at=T0, expires_at=T0 + 3600, areas=("DXB",), channels=("sms",),
                       inputs={}, forms={}, created_by="test")


async def phones(count: int) -> AsyncIterator[Sequence[NewDelivery]]:
    for start in range(0, count, 500):
        yield [NewDelivery("sms", "sms/ar", "ar", recipient=f"+9715{i:08d}") for i in range(start, start + 500)]


async def cap_growth(store: Store, extra_pages: int) -> None:
    """The disk is full ``extra_pages`` pages from now (SQLite refuses to grow the file past max_page_count)."""
    pages = (await store.db.execute("PRAGMA page_count")).rows[0][0]
    await store.db.execute(f"PRAGMA max_page_count = {pages + extra_pages}")


async def test_a_full_disk_at_commit_and_while_sending_says_so_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    database = str(tmp_path / "full.db")
    message = [MessageRecord("sms/ar", "sms", "ar", "نص عربي")]
    async with opened(database) as store:
        # The outbox commit runs out of room half-way through the list: nothing of the alert is kept.
        await cap_growth(store, 5)
        with pytest.raises(StoreFull, match="database or disk is full: free some space") as caught:
            await store.alerts.create(alert("A1"), message, phones(PHONES))
        assert "cannot rollback" not in str(caught.value)
        assert await store.alerts.find("A1") is None
        assert await store.alerts.count("A1") == 0

        # With room for the outbox but not for the attempt log, a claim fails whole: no delivery is left
        # 'sending' without the attempt intent that lets it be reconciled.
        await cap_growth(store, 10_000)
        assert await store.alerts.create(alert("A2"), message, phones(PHONES)) == (PHONES, 0)
        await cap_growth(store, 3)
        with pytest.raises(StoreFull):
            while True:  # a few claims fit in the pages left; the disk fills on one of them
                claimed = await store.leases.claim("sms", limit=50, now=T0, lease_s=60, owner="n")
                assert claimed
        counts = await store.alerts.state_counts("A2")
        sending = counts["sms"].get(DeliveryState.SENDING, 0)
        assert counts["sms"].get(DeliveryState.PENDING, 0) + sending == PHONES
        attempts = [a async for a in store.alerts.attempts("A2")]
        assert len(attempts) == sending  # every claimed delivery has its intent, and only those

    # Space again: the same database takes the rest, once each.
    async with opened(database) as store:
        while claimed := await store.leases.claim("sms", limit=500, now=T0, lease_s=60, owner="n"):
            await store.leases.record([
                AttemptResult(delivery_id=c.delivery_id, attempt_id=c.attempt_id, outcome=Outcome.SENT,
                              state=DeliveryState.SENT, started_at=T0, finished_at=T0 + 1, http_status=201,
                              provider_id=f"SM{c.delivery_id}", detail=None, next_attempt_at=None)
                for c in claimed])
        left = {DeliveryState.SENT: PHONES - sending, DeliveryState.SENDING: sending}  # those leased stay so
        assert await store.alerts.state_counts("A2") == {"sms": {k: n for k, n in left.items() if n}}
