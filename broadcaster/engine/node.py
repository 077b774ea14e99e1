"""This process as one node among those sharing the database.

A node registers itself (``nodes`` table), then beats every ``heartbeat_s``:
it stamps its heartbeat, renews the leases on what it has claimed, marks
deliveries of expired alerts ``expired``, and recovers the deliveries of nodes
that stopped beating (or whose process on this host is gone). Recovered deliveries become ``unknown``, so the next claim
reconciles them with the provider before any resend, exactly as ``resume``
does. On PostgreSQL the node also LISTENs for committed alerts and wakes its
idle workers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Final

import orjson

from broadcaster.engine.dispatcher import Waker, process_owner
from broadcaster.store.base import Store
from broadcaster.store.common import owner_is_dead
from broadcaster.store.sql import StoreUnavailable

log = logging.getLogger("broadcaster.node")

HEARTBEAT_S: Final = 2.0
LEASE_S: Final = 60.0  # renewed every heartbeat; what runs out when a node hangs without dying
DEAD_AFTER_S: Final = 15.0  # no heartbeat for this long: the node is dead and its deliveries are recovered


class Node:
    def __init__(self, store: Store, role: str, *, owner: str | None = None, heartbeat_s: float = HEARTBEAT_S,
                 lease_s: float = LEASE_S, dead_after_s: float = DEAD_AFTER_S) -> None:
        self.store = store
        self.role = role
        self.id = owner or process_owner()
        self.heartbeat_s = heartbeat_s
        self.lease_s = lease_s
        self.dead_after_s = dead_after_s
        self.recovered = 0

    def beat(self) -> int:
        """One heartbeat: stamp, renew leases, expire, recover dead nodes' deliveries. Returns how many it recovered."""
        now = time.time()
        self.store.heartbeat(self.id, now, self.lease_s)
        self.store.expire(now)
        stale = self.store.stale_nodes(now - self.dead_after_s)

        def is_dead(owner: str) -> bool:
            return owner != self.id and (owner in stale or owner_is_dead(owner))

        recovered = self.store.recover_orphans(now, is_dead)
        if recovered:
            log.warning("node %s recovered %d deliveries of dead nodes %s; they are reconciled before any resend",
                        self.id, recovered, ", ".join(sorted(stale)) or "(expired leases)")
        self.recovered += recovered
        return recovered

    async def beating(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                self.beat()
            except Exception:  # a missed beat is retried; the lease margin covers several
                log.exception("node %s: heartbeat failed", self.id)

    @contextlib.contextmanager
    def running(self, waker: Waker | None = None) -> Iterator[None]:
        """Registered and beating for the duration of the block (inside a running loop)."""
        self.store.register_node(self.id, self.role, time.time())
        stop_listening = self._listen(waker) if waker is not None else None
        self.beat()
        task = asyncio.get_running_loop().create_task(self.beating(), name=f"heartbeat:{self.id}")
        try:
            yield
        finally:
            task.cancel()
            if stop_listening is not None:
                stop_listening()
            try:
                # What this node still holds may or may not have left: unknown, reconciled by whoever claims it next.
                self.store.recover_orphans(time.time(), lambda owner: owner == self.id)
                self.store.stop_node(self.id, time.time())
            except StoreUnavailable as exc:  # then its heartbeat stops and other nodes recover its leases
                log.error("node %s could not sign off: %s", self.id, exc)

    def _listen(self, waker: Waker) -> Callable[[], None] | None:
        bridge = getattr(self.store, "bridge", None)
        if bridge is None:
            return None  # SQLite: one installation; idle workers poll
        from broadcaster.store.postgres import NOTIFY_CHANNEL

        loop = asyncio.get_running_loop()

        def notified(payload: str) -> None:
            try:
                channels: list[str] | None = orjson.loads(payload).get("channels")
            except (orjson.JSONDecodeError, AttributeError):
                channels = None
            loop.call_soon_threadsafe(waker.wake, channels)

        stop: Callable[[], None] = bridge.listen(NOTIFY_CHANNEL, notified)
        return stop
