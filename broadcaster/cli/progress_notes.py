"""The note beside each channel's progress bar in ``broadcaster fire``: what its deliveries are doing now.

A note counts deliveries, never attempts: "2 to send · 1 retrying · 1 waiting for rate limit". Each
recorded attempt moves its delivery from where it stood to its new state, so a delivery retried three
times is one delivery retrying, not "pending 3"; once it is sent it leaves the note.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Final

from broadcaster.errors import Reason
from broadcaster.states import DeliveryState, Mode

if TYPE_CHECKING:
    from broadcaster.store.records import AttemptResult

RATE_LIMITED: Final = "rate_limited"  # a retry set back by the provider's 429: a place of its own in the note
HELD: Final = "held"  # an unknown outcome on a channel that cannot ask its provider: an operator decides
FINAL: Final = frozenset({DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.EXPIRED, DeliveryState.WITHDRAWN})

# Where a delivery stands -> how the note says it, in the note's order.
WORDS: Final = (
    (DeliveryState.PENDING, "retrying"),
    (RATE_LIMITED, "waiting for rate limit"),
    (DeliveryState.UNKNOWN, "outcome unknown, checking with the provider"),
    (HELD, "outcome unknown, held for an operator"),
    (DeliveryState.FAILED, "failed"),
    (DeliveryState.EXPIRED, "expired"),
    (DeliveryState.WITHDRAWN, "withdrawn"),
)


class ChannelNote:
    """One channel's deliveries, as the attempts recorded so far leave them."""

    def __init__(self, total: int, mode: Mode) -> None:
        self.total = total
        self.mode = mode
        self.where: dict[int, str] = {}  # delivery id -> where it stands (a DeliveryState, RATE_LIMITED or HELD)
        self.counts: Counter[str] = Counter()

    def record(self, result: AttemptResult) -> None:
        before = self.where.get(result.delivery_id)
        if before is not None:
            self.counts[before] -= 1
        now = _where(result)
        self.where[result.delivery_id] = now
        self.counts[now] += 1

    @property
    def finished(self) -> int:
        """Deliveries in a final state (the bar's count)."""
        return sum(self.counts[state] for state in FINAL)

    def text(self) -> str:
        """``"2 to send · 1 retrying"`` while it runs; ``"all sent"`` (a dry-run: ``"all recorded"``) or its
        final states (``"3 sent · 1 failed"``) once every delivery is done."""
        started = sum(self.counts.values())
        to_send = max(0, self.total - started)
        parts = [f"{n} {word}" for key, word in WORDS if (n := self.counts[key])]
        sent = "recorded" if self.mode == Mode.DRY_RUN else "sent"
        if to_send or any(self.counts[key] for key in (DeliveryState.PENDING, RATE_LIMITED, DeliveryState.UNKNOWN,
                                                        DeliveryState.SENDING)):
            return " · ".join(([f"{to_send} to send"] if to_send else []) + parts)
        if not parts:
            return f"all {sent}" if started else "nothing to send"
        return " · ".join([f"{self.counts[DeliveryState.SENT]} {sent}", *parts])


def _where(result: AttemptResult) -> str:
    if result.state == DeliveryState.PENDING and (
            result.http_status == 429 or (result.detail or "").startswith(f"{Reason.RATE_LIMITED.value}:")):
        return RATE_LIMITED
    if result.state == DeliveryState.UNKNOWN and result.next_attempt_at is None:
        return HELD
    return str(result.state)
