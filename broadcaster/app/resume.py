"""``resume``: finish or reconcile the deliveries a crash, a kill or a stall left behind.

Deliveries still leased by a process that is gone (its pid is gone from this
host, or its node fell silent) turn ``unknown``; then every unfinished alert of
the given modes is delivered again through the normal engine, which reconciles
each unknown delivery with its provider before any resend.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from broadcaster.app.context import App
from broadcaster.app.fire import seal_if_finished
from broadcaster.engine.node import DEAD_AFTER_S
from broadcaster.engine.runner import deliver
from broadcaster.states import Mode
from broadcaster.store import owner_is_dead


@dataclass(frozen=True)
class Resumed:
    recovered: int  # deliveries taken back from dead processes (now reconciled before any resend)
    alerts: dict[str, dict[str, dict[str, int]]]  # alert id -> channel -> state -> count, after the run


async def recover_dead(app: App) -> int:
    """Leases of processes that are gone become ``unknown``; returns how many."""
    owners = await app.store.leases.owners()
    silent = await app.store.nodes.silent(DEAD_AFTER_S)
    dead = {o for o in owners if owner_is_dead(o) or o in silent}
    return await app.store.leases.recover(time.time(), dead)


async def resume(app: App, *, modes: Sequence[Mode]) -> Resumed:
    """Deliver what is left of every unfinished alert of ``modes`` (run dry-runs on a virtual loop)."""
    recovered = await recover_dead(app)
    by_mode: dict[Mode, list[str]] = {}
    for alert_id in await app.store.alerts.unfinished():
        alert = await app.store.alerts.get(alert_id)
        if alert.mode in modes:
            by_mode.setdefault(alert.mode, []).append(alert_id)
    by_id = {c.id: c for c in app.config.channels}
    for mode, ids in by_mode.items():
        wanted = sorted({c for alert_id in ids for c in (await app.store.alerts.get(alert_id)).channels})
        configs = app.config.with_fallbacks(by_id[c] for c in wanted if c in by_id)
        await deliver(app.store, configs, mode, alert_ids=ids, status_callback=app.status_callback)
    for ids in by_mode.values():
        for alert_id in ids:
            await seal_if_finished(app, alert_id)  # finished now: their final states are anchored
    return Resumed(recovered, {alert_id: await app.store.alerts.state_counts(alert_id)
                               for ids in by_mode.values() for alert_id in ids})
