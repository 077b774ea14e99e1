"""The one rate limiter: evenly spaced sends per channel, pausable after a 429.

A limiter hands out slots from its own memory, or, with :class:`SharedSlots`,
from the store, where every process on the database (other ``fire`` commands,
``serve``, workers on other nodes) reserves the same channel's slots: the sum
over them all stays within the channel's ``rate_per_second``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final, Protocol

from broadcaster.clock import Clock

SHARED_BLOCK_S: Final = 0.05  # at most 50 ms of a channel's slots reserved at a time
SHARED_BLOCK_MAX: Final = 256


class SlotLedger(Protocol):
    """The store's side of :class:`SharedSlots` (see Store.reserve_slots)."""

    def reserve_slots(self, channel_id: str, count: int, interval_s: float) -> tuple[float, float]: ...

    def pause_slots(self, channel_id: str, seconds: float) -> None: ...


class SharedSlots:
    """A channel's send slots reserved from the store in blocks, on the store's clock.

    The store returns slot times on its own clock with its "now"; they are
    mapped onto this loop's monotonic clock by that offset (taken as the
    request left, when the store read its clock), so nodes whose wall clocks
    disagree still share one rate. A slot left unused for longer than one
    interval is dropped, never spent late in a burst; so the block adapts to
    this node's pace: a node that keeps up with the rate takes up to 50 ms of
    slots at once, and one slower than the rate (the provider is not the limit)
    takes about as many as it used last time, so it wastes none of the slots
    other nodes could use.
    """

    def __init__(self, ledger: SlotLedger, channel_id: str, rate_per_second: float) -> None:
        self.ledger = ledger
        self.channel_id = channel_id
        self.interval_s = 1.0 / rate_per_second
        self.max_block = max(1, min(SHARED_BLOCK_MAX, math.ceil(rate_per_second * SHARED_BLOCK_S)))
        self.block = 1
        self._slots: deque[float] = deque()
        self._used = 0  # slots of the current block used so far
        self.reservations = 0

    def next_slot(self, clock: Clock) -> float:
        now = clock.monotonic()
        dropped = 0
        while self._slots and self._slots[0] < now - self.interval_s:
            self._slots.popleft()
            dropped += 1
        if not self._slots:
            # Used the whole block in time: take twice as many; fell behind: as many as it used.
            self.block = min(self.max_block, self.block * 2) if not dropped else max(1, self._used)
            sent_at = clock.monotonic()
            first, store_now = self.ledger.reserve_slots(self.channel_id, self.block, self.interval_s)
            self.reservations += 1
            offset = sent_at - store_now
            self._slots.extend(first + offset + i * self.interval_s for i in range(self.block))
            self._used = 0
        self._used += 1
        return self._slots.popleft()

    def pause(self, seconds: float) -> None:
        self._slots.clear()
        self.block = 1
        self.ledger.pause_slots(self.channel_id, seconds)


class RateLimiter:
    """Hands out send slots at most ``rate_per_second``, spaced ``min_interval_s`` apart.

    Slots are scheduled, not polled: each caller reserves the next slot and sleeps
    until it, so the achieved rate converges on the configured one even with many
    concurrent callers. ``pause(seconds)`` pushes every future slot past the
    provider's ``retry_after``; it affects only this channel's limiter.
    """

    def __init__(self, rate_per_second: float, clock: Clock, *, burst: int = 1,
                 shared: SharedSlots | None = None) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._shared = shared
        self.rate_per_second = rate_per_second
        self.min_interval_s = 1.0 / rate_per_second
        self._clock = clock
        self._burst = max(1, burst)
        self._next_slot: float | None = None
        self._paused_until = 0.0

    async def acquire(self) -> None:
        if self._shared is not None:
            await self._acquire_shared(self._shared)
            return
        while True:
            now = self._clock.monotonic()
            earliest = max(now, self._paused_until)
            if self._next_slot is None or self._next_slot < earliest - self.min_interval_s * (self._burst - 1):
                # Idle for a while: allow up to ``burst`` slots at once, no credit beyond that.
                self._next_slot = earliest - self.min_interval_s * (self._burst - 1)
            slot = max(self._next_slot, earliest)
            self._next_slot = slot + self.min_interval_s
            if slot > now:
                await self._clock.sleep(slot - now)
            # A 429 that arrived while we waited voids the slot: queue again after the pause.
            if self._clock.monotonic() >= self._paused_until:
                return

    async def _acquire_shared(self, shared: SharedSlots) -> None:
        while True:
            # Never two sends of this process closer than one interval, even from a late slot.
            slot = max(shared.next_slot(self._clock), self._paused_until, (self._next_slot or 0.0))
            now = self._clock.monotonic()
            self._next_slot = slot + self.min_interval_s
            if slot > now:
                await self._clock.sleep(slot - now)
            if self._clock.monotonic() >= self._paused_until:
                return

    def try_acquire(self) -> bool:
        """Take a slot only if one is free right now; never waits (e.g. per-user API limits)."""
        now = self._clock.monotonic()
        if now < self._paused_until:
            return False
        floor = now - self.min_interval_s * (self._burst - 1)
        if self._next_slot is None or self._next_slot < floor:
            self._next_slot = floor
        if self._next_slot > now:
            return False
        self._next_slot += self.min_interval_s
        return True

    def pause(self, seconds: float) -> None:
        """No slot is handed out for ``seconds`` from now (a provider said 429)."""
        self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)
        if self._next_slot is not None:
            self._next_slot = max(self._next_slot, self._paused_until)
        if self._shared is not None:
            self._shared.pause(seconds)  # every other process on the database pauses too

    @property
    def paused_until(self) -> float:
        return self._paused_until
