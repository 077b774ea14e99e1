"""This process as one node among those sharing the database, and the fence it sends behind.

A node registers itself (``nodes`` table), then beats every ``heartbeat_s``: it
stamps its heartbeat (on the database's clock), renews the leases on what it
has claimed, marks deliveries of expired alerts ``expired``, and recovers the
deliveries of nodes that fell silent for ``dead_after_s`` (or whose process on
this host is gone). Recovered deliveries become ``unknown``, so the next claim
reconciles them with the provider before any resend, exactly as ``resume`` does.

**Fencing.** Others may declare this node dead ``dead_after_s`` after its last
heartbeat reached the database. The node therefore sends only while
:meth:`Node.holds` is true: until ``dead_after_s - margin_s`` after the moment,
by its own monotonic clock, it *sent* its last successful heartbeat. A node that
stalls (SIGSTOP, a GC pause, a frozen VM, a partition) wakes with that time
passed: it sends nothing more of what it held, takes a new node id, turns its
old leases to ``unknown``, and lets reconciliation decide. An outcome that
arrives late from before the stall is written on its own attempt row only; it
never moves a delivery that was claimed again (see :mod:`broadcaster.store.leases`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Final, Protocol

from broadcaster.errors import StoreError
from broadcaster.store import Store, owner_is_dead

log = logging.getLogger("broadcaster.node")

HEARTBEAT_S: Final = 2.0
LEASE_S: Final = 60.0  # renewed every heartbeat; runs out only if a node stops beating without dying
DEAD_AFTER_S: Final = 15.0  # no heartbeat for this long: the node is dead and its deliveries are recovered
MARGIN_S: Final = 5.0  # a node stops sending this long before others may declare it dead


def process_owner() -> str:
    """A node id and lease owner tag: host, pid and a random token (pids get reused)."""
    return f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"


class Fence(Protocol):
    """What the dispatcher sends behind: an owner tag, and whether its leases still hold."""

    @property
    def id(self) -> str: ...

    def holds(self, owner: str) -> bool:
        """True while sending under leases claimed as ``owner`` is safe (it is still this node's id)."""
        ...

    async def wait(self) -> None:
        """Return once :meth:`holds` is true again (at once if it is)."""
        ...


class Unfenced:
    """A dry-run's fence: nothing else claims its deliveries, so it always holds."""

    def __init__(self, owner: str | None = None) -> None:
        self._id = owner or process_owner()

    @property
    def id(self) -> str:
        return self._id

    def holds(self, owner: str) -> bool:
        return owner == self._id

    async def wait(self) -> None:
        return None


class Waker:
    """Wakes idle channel workers when new deliveries are committed (by NOTIFY, or in-process)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, channel_id: str) -> asyncio.Event:
        return self._events.setdefault(channel_id, asyncio.Event())

    def wake(self, channel_ids: Iterable[str] | None = None) -> None:
        """Wake the workers of ``channel_ids`` (every worker when None)."""
        for cid in self._events if channel_ids is None else channel_ids:
            if cid in self._events:
                self._events[cid].set()


class Node:
    """A registered, beating process whose leases are fenced by its own monotonic clock."""

    def __init__(self, store: Store, role: str, *, owner: str | None = None, heartbeat_s: float = HEARTBEAT_S,
                 lease_s: float = LEASE_S, dead_after_s: float = DEAD_AFTER_S, margin_s: float = MARGIN_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not 0 < margin_s < dead_after_s or heartbeat_s >= dead_after_s - margin_s:
            raise ValueError("a node must beat more often than it stops trusting its leases")
        self.store = store
        self.role = role
        self._id = owner or process_owner()
        self.heartbeat_s = heartbeat_s
        self.lease_s = lease_s
        self.dead_after_s = dead_after_s
        self.margin_s = margin_s
        self._monotonic = monotonic
        self._valid_until = float("-inf")
        self._valid = asyncio.Event()
        self.recovered = 0
        self.rejoined = 0

    @property
    def id(self) -> str:
        return self._id

    def holds(self, owner: str | None = None) -> bool:
        """Whether this node's leases hold by its own clock, and ``owner`` (if given) is still its id.

        A claim made under an id this node has since given up (it woke from a
        stall and rejoined) never holds again: another node may own it now.
        """
        held = self._monotonic() < self._valid_until
        if not held:
            self._valid.clear()
        return held and (owner is None or owner == self._id)

    async def wait(self) -> None:
        if not self.holds():
            await self._valid.wait()

    async def beat(self) -> int:
        """One heartbeat: stamp, renew leases, expire, recover dead nodes' deliveries. Returns how many it recovered."""
        sent = self._monotonic()
        await self.store.nodes.heartbeat(self.id, time.time() + self.lease_s)
        self._valid_until = sent + self.dead_after_s - self.margin_s
        self._valid.set()
        now = time.time()
        await self.store.leases.expire(now)
        silent = await self.store.nodes.silent(self.dead_after_s)
        owners = await self.store.leases.owners()
        dead = {o for o in owners if o != self.id and (o in silent or owner_is_dead(o))}
        recovered = await self.store.leases.recover(now, dead)
        if recovered:
            log.warning("node %s recovered %d deliveries of dead or stalled nodes %s; they are reconciled before "
                        "any resend", self.id, recovered, ", ".join(sorted(dead)) or "(expired leases)")
        self.recovered += recovered
        return recovered

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                if not self.holds():
                    await self._rejoin()
                else:
                    await self.beat()
            except StoreError as exc:  # a missed beat is retried; the fence stops sends if they keep failing
                log.error("node %s: heartbeat failed: %s", self.id, exc)

    async def _rejoin(self) -> None:
        """After a stall (or a long loss of the database): a new id, and the old leases left to reconciliation."""
        old, self._id = self._id, process_owner()
        log.warning("node %s went %.1f s without a heartbeat (stalled or cut off): what it held is left unsent for "
                    "reconciliation; it goes on as %s", old, self._monotonic() - self._valid_until + self.dead_after_s
                    - self.margin_s, self._id)
        await self.store.leases.recover(time.time(), {old})
        await self.store.nodes.stop(old)
        await self.store.nodes.register(self._id, self.role)
        self.rejoined += 1
        await self.beat()

    @contextlib.asynccontextmanager
    async def running(self, waker: Waker | None = None) -> AsyncIterator[Node]:
        """Registered and beating for the duration of the block; with ``waker``, woken by committed alerts."""
        await self.store.nodes.register(self.id, self.role)
        await self.beat()
        task = asyncio.create_task(self._beating(), name=f"heartbeat:{self.id}")
        try:
            async with contextlib.AsyncExitStack() as stack:
                if waker is not None:
                    await stack.enter_async_context(self.store.wakeups.listening(waker.wake))
                yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                # What this node still holds may or may not have left: unknown, reconciled by whoever claims it next.
                await self.store.leases.recover(time.time(), {self.id})
                await self.store.nodes.stop(self.id)
            except StoreError as exc:  # then its heartbeat stops and other nodes recover its leases
                log.error("node %s could not sign off: %s", self.id, exc)
