"""Verification codes (migration 0010): one code names one alert, append-only; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from broadcaster.errors import IntegrityError
from broadcaster.states import Mode, MsgType
from broadcaster.store import Store
from broadcaster.store.records import AlertRecord, MessageRecord, NewDelivery
from tests.store.test_contract import T0, alert, batches

MESSAGES = [MessageRecord("tg/ar", "tg", "ar", "تلغرام")]


async def create(store: Store, record: AlertRecord) -> None:
    await store.alerts.create(record, MESSAGES, batches([NewDelivery("tg", "tg/ar", "ar")]))


async def test_a_code_is_committed_with_its_alert_and_names_it_alone(store: Store) -> None:
    await create(store, dataclasses.replace(alert("A1"), short="ABCD2345"))
    await create(store, alert("A2"))  # a template without a verification line: no code
    assert await store.alerts.by_short("ABCD2345") == "A1"
    assert await store.alerts.by_short("ZZZZZZZZ") is None
    with pytest.raises(IntegrityError):  # another alert can never take the same code: nothing of it is committed
        await create(store, dataclasses.replace(alert("A3"), short="ABCD2345"))
    assert await store.alerts.find("A3") is None
    with pytest.raises(IntegrityError, match="append-only"):
        await store.db.execute("UPDATE verify_codes SET alert_id = ? WHERE short = ?", ("A2", "ABCD2345"))
    with pytest.raises(IntegrityError, match="append-only"):
        await store.db.execute("DELETE FROM verify_codes WHERE short = ?", ("ABCD2345",))


async def test_one_read_gives_the_alert_its_follow_ups_and_a_cancel_of_a_later_update(store: Store) -> None:
    def linked(alert_id: str, refs: str | None, sent: float, msg_type: MsgType, **changes: object) -> AlertRecord:
        return dataclasses.replace(alert(alert_id, references=refs), sent_at=sent, msg_type=msg_type, **changes)

    await create(store, linked("O", None, T0, MsgType.ALERT, short="00000000"))
    await create(store, linked("U", "O", T0 + 1, MsgType.UPDATE, short="11111111"))
    await create(store, linked("D", "O", T0 + 2, MsgType.UPDATE, mode=Mode.DRY_RUN))
    await create(store, linked("C", "U", T0 + 3, MsgType.CANCEL,
                               cap="<references>s,s/O,2026 s,s/U,2026</references>"))
    await create(store, linked("X", None, T0 + 4, MsgType.ALERT))
    found = await store.alerts.verification("O", cancel_ref="%/O,%")
    assert [(a.id, a.short) for a in found] == [("O", "00000000"), ("U", "11111111"), ("D", None), ("C", None)]
    assert [a.id for a in await store.alerts.verification("O")] == ["O", "U", "D"]
    assert await store.alerts.verification("nobody") == []
