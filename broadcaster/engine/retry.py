"""Retry policy: exponential backoff with full jitter, bounded by the alert's expiry.

There is one retry loop in the project, the dispatcher's claim loop: a
retryable failure puts the delivery back to ``pending`` with a later
``next_attempt_at`` computed here, so retries survive a restart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 1.0
    cap_s: float = 60.0
    # Grace before asking a provider whether a timed-out request went through.
    reconcile_after_s: float = 5.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1``.

        Full jitter (uniform between 0 and the exponential ceiling) spreads a
        burst of retries; a provider's ``retry_after`` is a floor, never ignored.
        """
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        delay = rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def next_attempt_at(
        self, now: float, attempt: int, retry_after: float | None, expires_at: float, rng: random.Random
    ) -> float | None:
        """When to try again, or None when that would be at or after expiry (give up)."""
        when = now + self.delay(attempt, retry_after, rng)
        return when if when < expires_at else None
