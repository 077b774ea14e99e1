"""SMS failover: one primary channel's circuit, and its moves to its fallback channel and back.

The dispatcher keeps one :class:`Failover` per channel that names a ``fallback``
(both channels open in the run). It reports every answer of the primary's provider
to the circuit (:mod:`broadcaster.engine.circuit`); when the circuit opens:

* the primary's ``pending`` deliveries move to the fallback in the store, one
  transaction per batch, each with a ``moved`` row in its log ("moved from
  sms-twilio to sms-infobip: circuit open after 5 server errors in a row"), due at once;
* the primary starts nothing more; a delivery it had claimed but not started goes
  back to pending (recorded as not sent) and moves with the rest;
* a delivery whose outcome at the primary is ``unknown`` (the request may have
  gone out) never moves: it waits at the primary and is reconciled there first.
  While the provider cannot answer, it stays held; after the cool-down the
  half-open trial is such a reconcile when one is due. So no phone gets the SMS
  twice, and none is skipped.

When the trial succeeds the circuit closes, and the deliveries moved but not yet
sent (still ``pending`` on the fallback) move back to the primary.

Moves touch only ``pending`` deliveries, which no node holds a lease on: a node
whose fence no longer holds could not double a send by moving one, yet it still
moves nothing (it looks at its fence before each batch), as it sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from broadcaster.clock import Clock
from broadcaster.config import ChannelConfig
from broadcaster.engine.circuit import Circuit
from broadcaster.engine.node import Fence
from broadcaster.errors import DeliveryError
from broadcaster.states import CircuitState, Mode
from broadcaster.store import Store

__all__ = ["Failover"]

log = logging.getLogger("broadcaster.failover")


class Failover:
    """The circuit of ``primary`` and its moves to ``fallback`` (ids of two open channels of one run)."""

    def __init__(self, store: Store, primary: ChannelConfig, fallback: str, *, clock: Clock, fence: Fence,
                 batch: int, nudge: Callable[[], None], observer: Any = None) -> None:
        self.store = store
        self.primary = primary.id
        self.fallback = fallback
        self.clock = clock
        self.fence = fence
        self.batch = max(1, batch)
        self.nudge = nudge  # wakes the fallback's worker
        self.observer = observer
        self.opened = asyncio.Event()  # set while the circuit is open (the worker stops starting sends)
        self.back_due = False  # the circuit closed after a trial: move what is left on the fallback back
        self.moved = 0  # deliveries moved to the fallback (in this process)
        self.opened_at: float | None = None  # monotonic time the circuit last opened (the bench reads it)
        self.circuit = Circuit(primary.circuit, clock.monotonic, on_change=self._changed)

    def _changed(self, old: CircuitState, new: CircuitState, why: str) -> None:
        level = logging.INFO if new is CircuitState.CLOSED else logging.WARNING
        log.log(level, "channel %s: circuit %s -> %s (%s)", self.primary, old, new, why)
        if new is CircuitState.OPEN:
            self.opened.set()
            self.opened_at = self.clock.monotonic()
        else:
            self.opened.clear()
        if new is CircuitState.CLOSED:
            self.back_due = True
        hook = getattr(self.observer, "circuit", None)
        if hook is not None:
            try:
                hook(self.primary, new)
            except Exception:  # metrics are never worth a lost delivery
                log.exception("circuit observer failed for channel %s", self.primary)

    async def before_claim(self, flush: Callable[[], Awaitable[None]], owner: str, alert_ids: Sequence[str] | None,
                           modes: Sequence[Mode] | None, *, batch_size: int, busy: bool) -> int:
        """How many deliveries the primary may claim now: a batch (closed), one trial (half-open, nothing in
        flight) or none (open, after its pending deliveries moved to the fallback)."""
        state = self.circuit.state
        if state is CircuitState.OPEN:
            await flush()  # outcomes that made deliveries pending again move too
            await self.move_away(owner, alert_ids, modes)
            return 0
        if state is CircuitState.HALF_OPEN:
            return 1 if not busy and self.circuit.allow() else 0
        if self.back_due:
            await self.move_back(owner, alert_ids, modes)
        return batch_size

    async def while_open(self, in_flight: set[asyncio.Task[None]], flush: Callable[[], Awaitable[None]],
                         alert_ids: Sequence[str] | None, modes: Sequence[Mode] | None, *, long_running: bool,
                         max_sleep_s: float) -> bool:
        """The circuit is open: wait for in-flight answers, or for the cool-down (unknowns held here).
        True when nothing is left for the primary (a run that is not long-running ends its worker)."""
        if in_flight:
            await asyncio.wait(set(in_flight), return_when=asyncio.FIRST_COMPLETED,
                               timeout=max(0.01, self.circuit.until_trial()))
            await flush()
            return False
        await flush()
        due = await self.store.leases.next_due(self.primary, alert_ids=alert_ids, modes=modes)
        if due is None and not long_running:
            return True  # everything moved or finished: nothing is held here
        wait = self.circuit.until_trial()
        if due is not None:
            wait = max(wait, due - self.clock.now())
        await self.clock.sleep(min(max(0.01, wait), max_sleep_s))
        return False

    async def may_start(self, slots: asyncio.Semaphore, rate_slot: Callable[[], Awaitable[None]]) -> bool:
        """One of the primary's concurrency slots, then a rate slot, unless the circuit opens first (False:
        nothing held)."""
        if self.opened.is_set():
            return False
        acquired = asyncio.ensure_future(slots.acquire())
        opened = asyncio.ensure_future(self.opened.wait())
        await asyncio.wait({acquired, opened}, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        if not acquired.done():
            acquired.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquired
        if acquired.cancelled() or not acquired.done():
            return False
        if not self.opened.is_set():
            await rate_slot()
        if self.opened.is_set():
            slots.release()
            return False
        return True

    def record(self, started: float, error: DeliveryError | None) -> None:
        """An answer of the primary's provider to a request started at ``started`` (monotonic)."""
        self.circuit.record(started, error)

    async def move_away(self, owner: str, alert_ids: Sequence[str] | None, modes: Sequence[Mode] | None) -> int:
        """While the circuit is open: every pending delivery of the primary to the fallback, batch by batch."""
        detail = f"moved from {self.primary} to {self.fallback}: {self.circuit.reason}"
        return await self._move(self.primary, self.fallback, owner, detail, None, alert_ids, modes)

    async def move_back(self, owner: str, alert_ids: Sequence[str] | None, modes: Sequence[Mode] | None) -> int:
        """After the circuit closed: the primary's deliveries still pending on the fallback come home."""
        self.back_due = False
        detail = f"moved back from {self.fallback} to {self.primary}: its circuit closed (the trial succeeded)"
        return await self._move(self.fallback, self.primary, owner, detail, self.primary, alert_ids, modes)

    async def _move(self, source: str, target: str, owner: str, detail: str, home: str | None,
                    alert_ids: Sequence[str] | None, modes: Sequence[Mode] | None) -> int:
        total = 0
        while self.fence.holds(owner):
            n = await self.store.leases.move(source, target, now=self.clock.now(), detail=detail, owner=owner,
                                             limit=self.batch, home=home, alert_ids=alert_ids, modes=modes)
            total += n
            if n:
                if target == self.fallback:
                    self.moved += n
                    self.nudge()
                log.log(logging.WARNING if target == self.fallback else logging.INFO, "%s deliveries %s", n, detail)
                hook = getattr(self.observer, "moved", None)
                if hook is not None:
                    try:
                        hook(source, target, n)
                    except Exception:
                        log.exception("move observer failed for channel %s", source)
            if n < self.batch:
                break
        return total
