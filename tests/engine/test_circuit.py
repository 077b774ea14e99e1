"""engine.circuit: opens after failures in a row within the window, half-opens after the cool-down, closes on a
good trial; only provider-away failures count, and answers from before a change are ignored."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.config import CircuitOptions
from broadcaster.engine.circuit import Circuit
from broadcaster.errors import DeliveryError, Reason
from broadcaster.states import CircuitState

SERVER = DeliveryError(Reason.SERVER, "HTTP 503", retryable=True)
TIMEOUT = DeliveryError(Reason.TIMEOUT, "read timeout", retryable=True, sent_maybe=True)
GONE = DeliveryError(Reason.RECIPIENT_GONE, "21211", retryable=False)
LIMITED = DeliveryError(Reason.RATE_LIMITED, "429", retryable=True)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def circuit(failures: int = 3, window_s: float = 10.0, cooldown_s: float = 5.0) -> tuple[Circuit, Clock, list[str]]:
    clock, changes = Clock(), []
    breaker = Circuit(CircuitOptions(failures=failures, window_s=window_s, cooldown_s=cooldown_s), clock,
                      on_change=lambda old, new, why: changes.append(f"{old}->{new}: {why}"))
    return breaker, clock, changes


def test_it_opens_after_failures_in_a_row_then_half_opens_and_closes_on_a_good_trial() -> None:
    breaker, clock, changes = circuit()
    for error in (SERVER, TIMEOUT):
        breaker.record(clock(), error)
    assert breaker.state is CircuitState.CLOSED and breaker.allow()
    breaker.record(clock(), SERVER)
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    assert breaker.reason == "circuit open after 3 server errors in a row"
    assert breaker.until_trial() == 5.0

    clock.t += 5.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow() and not breaker.allow(), "exactly one trial at a time"
    breaker.record(clock(), None)
    assert breaker.state is CircuitState.CLOSED and breaker.allow()
    assert changes == ["closed->open: circuit open after 3 server errors in a row",
                       "open->half-open: cool-down over: one trial request",
                       "half-open->closed: the trial request succeeded"]


def test_a_failed_trial_opens_it_again_for_a_whole_cool_down() -> None:
    breaker, clock, _ = circuit(failures=1)
    breaker.record(clock(), SERVER)
    clock.t += 5.0
    assert breaker.allow()
    breaker.record(clock(), TIMEOUT)
    assert breaker.state is CircuitState.OPEN and breaker.until_trial() == 5.0
    assert breaker.reason.startswith("the trial request failed too")


def test_a_providers_no_about_one_recipient_or_a_429_breaks_the_run() -> None:
    breaker, clock, _ = circuit()
    for error in (SERVER, SERVER, GONE, SERVER, SERVER, LIMITED, SERVER, SERVER):
        breaker.record(clock(), error)
    assert breaker.state is CircuitState.CLOSED


def test_failures_older_than_the_window_do_not_count() -> None:
    breaker, clock, _ = circuit(window_s=10.0)
    breaker.record(clock(), SERVER)
    clock.t += 6
    breaker.record(clock(), SERVER)
    clock.t += 6  # the first is now 12 s old
    breaker.record(clock(), SERVER)
    assert breaker.state is CircuitState.CLOSED
    breaker.record(clock(), SERVER)
    assert breaker.state is CircuitState.OPEN


def test_answers_to_requests_from_before_a_change_are_ignored() -> None:
    breaker, clock, _ = circuit(failures=1)
    early = clock()
    clock.t += 1
    breaker.record(clock(), SERVER)  # opens
    breaker.record(early, None)  # a slow request that left before: must not close it
    assert breaker.state is CircuitState.OPEN
    clock.t += 5
    assert breaker.allow()
    breaker.record(clock(), None)
    breaker.record(early, SERVER)  # its late failure must not reopen it
    assert breaker.state is CircuitState.CLOSED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ok", "server", "gone", "wait"]), st.floats(0, 3)), max_size=60))
def test_it_opens_exactly_when_the_last_failures_in_a_row_fit_the_window(events: list[tuple[str, float]]) -> None:
    """A model check of the closed state: open iff `failures` provider-away answers in a row, within the window."""
    breaker, clock, _ = circuit(failures=3, window_s=4.0, cooldown_s=1000.0)
    run: list[float] = []
    for what, pause in events:
        clock.t += pause
        if what == "wait":
            continue
        breaker.record(clock(), {"ok": None, "server": SERVER, "gone": GONE}[what])
        run = [*[t for t in run if t >= clock() - 4.0], clock()] if what == "server" else []
        if len(run) >= 3:
            assert breaker.state is CircuitState.OPEN
            return
        assert breaker.state is CircuitState.CLOSED
