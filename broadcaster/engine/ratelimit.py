"""The one rate limiter: evenly spaced sends per channel, pausable after a 429."""

from __future__ import annotations

from broadcaster.clock import Clock


class RateLimiter:
    """Hands out send slots at most ``rate_per_second``, spaced ``min_interval_s`` apart.

    Slots are scheduled, not polled: each caller reserves the next slot and sleeps
    until it, so the achieved rate converges on the configured one even with many
    concurrent callers. ``pause(seconds)`` pushes every future slot past the
    provider's ``retry_after``; it affects only this channel's limiter.
    """

    def __init__(self, rate_per_second: float, clock: Clock, *, burst: int = 1) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate_per_second = rate_per_second
        self.min_interval_s = 1.0 / rate_per_second
        self._clock = clock
        self._burst = max(1, burst)
        self._next_slot: float | None = None
        self._paused_until = 0.0

    async def acquire(self) -> None:
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

    @property
    def paused_until(self) -> float:
        return self._paused_until
