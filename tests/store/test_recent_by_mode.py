"""Issue 12, point 6: the history lists alerts of chosen modes, so dry-runs and rehearsals (dated days ahead on
their virtual clock) never push the real alerts out of its limit. Both backends."""

from __future__ import annotations

from dataclasses import replace

from broadcaster.states import Mode
from broadcaster.store import Store
from tests.store.test_contract import T0, alert, batches


async def test_recent_keeps_only_the_modes_asked_for_newest_first(store: Store) -> None:
    rows = [("LIVE-OLD", Mode.LIVE, T0), ("DRY-AHEAD", Mode.DRY_RUN, T0 + 3 * 86400), ("EX", Mode.EXERCISE, T0 + 60),
            ("LIVE-NEW", Mode.LIVE, T0 + 120)]
    for alert_id, mode, sent in rows:
        await store.alerts.create(replace(alert(alert_id, mode=mode), sent_at=sent), [], batches())
    assert [a.id for a in await store.alerts.recent()] == ["DRY-AHEAD", "LIVE-NEW", "EX", "LIVE-OLD"]
    assert [a.id for a in await store.alerts.recent(10, [Mode.LIVE, Mode.EXERCISE])] == ["LIVE-NEW", "EX", "LIVE-OLD"]
    assert [a.id for a in await store.alerts.recent(1, [Mode.LIVE, Mode.EXERCISE])] == ["LIVE-NEW"]
    assert [a.id for a in await store.alerts.recent(10, [Mode.DRY_RUN])] == ["DRY-AHEAD"]
    assert await store.alerts.recent(10, []) == []


async def test_recent_pending_fires_keep_only_the_modes_asked_for(store: Store) -> None:
    await store.pending.add("P-LIVE", "earthquake", "live", {"kind": "fire"}, "officer", now=T0, window_s=600)
    await store.pending.add("P-EX", "earthquake", "exercise", {"kind": "fire"}, "officer", now=T0 + 1, window_s=600)
    assert [p.alert_id for p in await store.pending.recent(10)] == ["P-EX", "P-LIVE"]
    assert [p.alert_id for p in await store.pending.recent(10, [Mode.LIVE])] == ["P-LIVE"]
    assert await store.pending.recent(10, [Mode.DRY_RUN]) == []
