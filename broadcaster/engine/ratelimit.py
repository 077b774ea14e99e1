"""The one rate limiter: evenly spaced sends per channel, pausable after a 429.

A limiter hands out slots from its own memory, or, with :class:`SharedSlots`,
from the store, where every process on the database (other ``fire`` commands,
``serve``, workers on other nodes) reserves the same channel's slots: the sum
over them all stays within the channel's ``rate_per_second``.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Protocol

from broadcaster.clock import Clock

# Channels send at 98 % of their rate_per_second (see Dispatcher): a few ms of scheduling jitter can move
# a send across the edge of a provider's one-second window, and the margin keeps every such window within it.
RATE_HEADROOM: Final = 0.98
SHARED_SPAN_S: Final = 0.01  # a block of shared slots covers about 10 ms of this process's sending
SHARED_BLOCK_MAX: Final = 256
_PACE_WEIGHT: Final = 0.2  # weight of the newest gap in the moving average of this process's pace


class SlotLedger(Protocol):
    """The store's side of :class:`SharedSlots` (``store.slots``)."""

    async def reserve(self, channel_id: str, count: int, interval_s: float) -> tuple[float, float]: ...

    async def pause(self, channel_id: str, seconds: float) -> None: ...


class SharedSlots:
    """A channel's send slots reserved from the store in blocks, on the store's clock.

    The store hands out ``count`` slots one interval apart (``1/rate``) and
    returns its own "now"; the slots are mapped onto this loop's clock with the
    time the request left, so nodes whose wall clocks disagree share one rate.

    A slot is never used early, and never more than 10 ms late (then it is
    dropped). A block holds about as many slots as this process sends in those
    10 ms at its own pace (a moving average of the time between its sends): a
    process that keeps up with the rate takes ~10 ms of slots and uses each on
    time; one slower than the rate (the CPU is the limit, not the provider)
    takes no more slots than it will use, so other nodes never queue behind
    slots it would waste. Late slots can put at most ~10 ms of one node's slots
    into another's second: the sum over nodes stays within the rate to ~1 %.
    """

    def __init__(self, ledger: SlotLedger, channel_id: str, rate_per_second: float) -> None:
        self.ledger = ledger
        self.channel_id = channel_id
        self.interval_s = 1.0 / rate_per_second
        self.pace_s = self.interval_s  # this process's time between sends (moving average)
        self._slots: deque[float] = deque()
        self._last_call: float | None = None

    async def next_slot(self, clock: Clock) -> float:
        now = clock.monotonic()
        if self._last_call is not None:
            gap = min(max(now - self._last_call, self.interval_s), SHARED_SPAN_S)
            self.pace_s += _PACE_WEIGHT * (gap - self.pace_s)
        self._last_call = now
        while self._slots and self._slots[0] < now - SHARED_SPAN_S:
            self._slots.popleft()
        if not self._slots:
            count = max(1, min(SHARED_BLOCK_MAX, round(SHARED_SPAN_S / self.pace_s)))
            sent_at = clock.monotonic()
            first, store_now = await self.ledger.reserve(self.channel_id, count, self.interval_s)
            start = first + sent_at - store_now
            self._slots.extend(start + i * self.interval_s for i in range(count))
        return self._slots.popleft()

    async def pause(self, seconds: float) -> None:
        self._slots.clear()
        await self.ledger.pause(self.channel_id, seconds)


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
            slot = max(await shared.next_slot(self._clock), self._paused_until, (self._next_slot or 0.0))
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

    async def pause(self, seconds: float) -> None:
        """No slot is handed out for ``seconds`` from now (a provider said 429)."""
        self._paused_until = max(self._paused_until, self._clock.monotonic() + seconds)
        if self._next_slot is not None:
            self._next_slot = max(self._next_slot, self._paused_until)
        if self._shared is not None:
            await self._shared.pause(seconds)  # every other process on the database pauses too
