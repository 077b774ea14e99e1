"""The words the whole system shares for modes, states and outcomes, as ``StrEnum``s.

They are plain strings on the wire and in the database (``Mode.LIVE == "live"``),
so JSON shapes and stored rows read exactly as before; in code a typo is an
AttributeError instead of a silent mismatch.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Mode(StrEnum):
    """How an alert goes out (see the README: drill and live must be unmistakable)."""

    DRY_RUN = "dry-run"  # render, validate, rate-limit and log; no network connection at all
    EXERCISE = "exercise"  # real sends, only to exercise = true channels, every text marked
    LIVE = "live"  # real alerts to the public


class MsgType(StrEnum):
    """CAP ``msgType``: a new alert, or a follow-up that references an earlier one."""

    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"


class CancelReason(StrEnum):
    """Why an alert is cancelled; each reason has its own approved text (``broadcaster cancel --reason``)."""

    ERROR = "error"  # it was sent in error: there is no danger (templates/cancel.toml)
    CALLED_OFF = "called_off"  # what it announced will not happen: a planned closure called off (call_off.toml)


class DeliveryState(StrEnum):
    """Where one delivery stands. ``sending`` is leased to one node; ``unknown`` must be reconciled first."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


class Outcome(StrEnum):
    """What one attempt came to (the attempt log's ``outcome`` column)."""

    SENT = "sent"
    RECONCILED = "reconciled"  # found at the provider after an unknown outcome: not sent again
    RETRY = "retry"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the request may have left; reconcile before any resend
    EXPIRED = "expired"  # the alert expired before the attempt could start
    MOVED = "moved"  # not an attempt: the delivery moved to another channel (failover), or back


class CircuitState(StrEnum):
    """A channel's circuit breaker (engine.circuit): closed sends, open moves SMS to the fallback."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"  # after the cool-down: one trial request decides


class OnUnknown(StrEnum):
    """What a channel that cannot ask its provider does after an unknown outcome."""

    RESEND = "resend"
    HOLD = "hold"  # wait for an operator (`broadcaster held` / `release`)


class RunKind(StrEnum):
    REHEARSAL = "rehearsal"
    RUNBOOK = "runbook"
    SCHEDULE = "schedule"


class RunState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"


class StepState(StrEnum):
    """A runbook step occurrence; a job claims ``scheduled -> firing`` before it fires."""

    AWAITING = "awaiting"  # needs an operator's confirmation
    SCHEDULED = "scheduled"
    FIRING = "firing"
    HELD = "held"  # its live two-person alert waits for a second officer: nothing sent yet
    FIRED = "fired"
    FAILED = "failed"  # could not be planned
    MISSED = "missed"  # beyond the grace window
    SKIPPED = "skipped"  # not needed any more


CAP_STATUS: Final = {Mode.DRY_RUN: "Test", Mode.EXERCISE: "Exercise", Mode.LIVE: "Actual"}
OPEN_STATES: Final = frozenset({DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.UNKNOWN})
FINAL_STATES: Final = frozenset({DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.EXPIRED,
                                 DeliveryState.WITHDRAWN})
DONE_STEPS: Final = frozenset({StepState.FIRED, StepState.FAILED, StepState.MISSED, StepState.SKIPPED})


RECORDED: Final = "recorded"  # a dry-run's "sent", as a person reads it: recorded here, sent to no one


def state_word(state: str, mode: str) -> str:
    """A delivery state or attempt outcome as a person reads it: in a dry-run, "sent" is "recorded".

    Only views say it so; the database and every JSON shape keep the stored word ("sent"),
    next to the alert's ``"mode": "dry-run"``.
    """
    return RECORDED if mode == Mode.DRY_RUN and state == DeliveryState.SENT else str(state)
