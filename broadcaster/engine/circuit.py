"""One channel's circuit breaker, for SMS failover (the dispatcher runs one per channel that has a ``fallback``).

::

    closed ──(failures in a row, within window_s)──▶ open ──(cooldown_s)──▶ half-open
       ▲                                               ▲                       │
       └──────────── the trial succeeds ───────────────┼───────────────────────┤
                                                       └── the trial fails ────┘

Only network-ish failures count (a timeout, a refused or dropped connection, a
5xx): the provider is away. A permanent per-recipient answer (a bad number, a
STOP) or a 429 is the provider at work, and breaks a run of failures like a
success does. Answers to requests that started before the circuit last changed
state are ignored: a slow request's late success must not close a circuit that
opened after it left, nor its late failure reopen one that just closed. In
half-open, exactly one trial request is let through at a time.

The breaker is memory only, per process: after a restart a channel starts
closed and finds out again. Everything it decides is written to the store by
the dispatcher (the moves), so nothing is lost with it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from broadcaster.config import CircuitOptions
from broadcaster.errors import DeliveryError, Reason
from broadcaster.states import CircuitState

__all__ = ["Circuit", "counts_against"]

_PROVIDER_AWAY: Final = frozenset({Reason.SERVER, Reason.NETWORK, Reason.TIMEOUT})


def counts_against(error: DeliveryError) -> bool:
    """Whether ``error`` says the provider is away (timeouts, connections, 5xx), not that it said no."""
    return error.reason in _PROVIDER_AWAY and error.retryable


class Circuit:
    """Closed, open or half-open, on ``now`` (monotonic seconds); ``on_change(old, new, why)`` hears every move."""

    def __init__(self, options: CircuitOptions, now: Callable[[], float],
                 on_change: Callable[[CircuitState, CircuitState, str], None] | None = None) -> None:
        self.options = options
        self._now = now
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._since = now()  # when the state last changed
        self._failures: deque[float] = deque()  # times of the failures in a row, oldest first
        self._trial = False  # a half-open trial is in flight
        self.reason = ""  # why it last opened ("circuit open after 5 server errors")

    @property
    def state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._now() >= self._since + self.options.cooldown_s:
            self._move(CircuitState.HALF_OPEN, "cool-down over: one trial request")
        return self._state

    def until_trial(self) -> float:
        """Seconds until the cool-down ends (0 when it has, or the circuit is not open)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._since + self.options.cooldown_s - self._now())

    def allow(self) -> bool:
        """Whether a request may start now; in half-open this takes the one trial (call :meth:`record` after)."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        return False

    def record(self, started: float, error: DeliveryError | None) -> None:
        """The answer to a request started at ``started``: None for success (or a provider's "no" about one
        recipient, which says the provider is there), else the error."""
        if started < self._since:
            return  # it left before the last change: its answer says nothing about now
        away = error is not None and counts_against(error)
        state = self.state
        if state is CircuitState.HALF_OPEN:
            if not self._trial:
                return
            self._trial = False
            if away:
                self._open(f"the trial request failed too ({_words(error)})")
            else:
                self._move(CircuitState.CLOSED, "the trial request succeeded")
            return
        if state is not CircuitState.CLOSED:
            return
        if not away:
            self._failures.clear()
            return
        now = self._now()
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self.options.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.options.failures:
            self._open(f"circuit open after {len(self._failures)} {_words(error)} in a row")

    def release_trial(self) -> None:
        """The trial was taken but no request went out (nothing due): the next caller may try."""
        self._trial = False

    def _open(self, why: str) -> None:
        self.reason = why
        self._failures.clear()
        self._move(CircuitState.OPEN, why)

    def _move(self, state: CircuitState, why: str) -> None:
        old, self._state, self._since = self._state, state, self._now()
        self._trial = False
        if self._on_change is not None and old is not state:
            self._on_change(old, state, why)


def _words(error: DeliveryError | None) -> str:
    if error is None:
        return "failures"
    return {Reason.SERVER: "server errors", Reason.TIMEOUT: "timeouts"}.get(error.reason, "network failures")
