"""Rows the store hands out and takes in: alerts, messages, deliveries, attempts, nodes and runs.

These are the types both sides of the store interfaces need, so they live here,
below everything that uses them: the store imports nothing from ``runbooks``,
``engine`` or the faces, and they import these instead of a backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broadcaster.states import DeliveryState, Mode, MsgType, Outcome, RunKind, RunState, StepState
from broadcaster.timefmt import iso


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: str
    template: str
    template_hash: str
    mode: Mode
    msg_type: MsgType
    references: str | None  # id of the alert this one updates or cancels
    sent_at: float  # unix seconds
    expires_at: float
    areas: tuple[str, ...]
    channels: tuple[str, ...]
    inputs: dict[str, dict[str, str]]
    forms: dict[str, dict[str, str]]
    created_by: str = "cli"
    # The CAP 1.2 document as built when the alert was planned (migration 0008), stored and anchored with it:
    # what /cap/{id}.xml serves, never rebuilt from today's templates. None for alerts from before it.
    cap: str | None = None
    # The code of its public verification link ({public_url}/v/CODE) when its template carries a verification
    # line (migration 0010, table verify_codes); None otherwise. Not an alerts column, so not in its anchor
    # hash by itself: the texts that carry the link are.
    short: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One rendered text shared by every delivery of one channel and language."""

    key: str  # f"{channel}/{language}", unique within the alert
    channel_id: str
    language: str
    text: str
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    channel_id: str
    message_key: str
    language: str
    recipient: str | None = None
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class AudienceCopy:
    """A follow-up reaches the recipients an earlier alert had on one channel, copied inside the database.

    ``keys`` maps a language to the follow-up's message key; a recipient whose
    language the channel no longer sends gets ``fallback``'s message.
    """

    channel_id: str
    from_alert: str
    states: tuple[DeliveryState, ...]
    keys: dict[str, str]
    fallback: str


@dataclass(frozen=True, slots=True)
class StepClaim:
    """The runbook step occurrence an alert fires for, as claimed by one scheduler host (its fencing token).

    The outbox commit writes the alert's id on that row in the same transaction,
    and only while this host still holds the claim: a host that stalled while
    another re-armed the step can never commit it a second time.
    """

    run_id: str
    step_id: str
    occurrence: int
    owner: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased to this node, with its attempt intent already written."""

    delivery_id: int
    attempt_id: int
    attempt: int
    alert_id: str
    channel_id: str
    language: str
    recipient: str | None
    reply_to: str | None
    text: str
    payload: bytes | None
    previous_state: DeliveryState  # pending, or unknown when it must be reconciled first
    sent_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The result of one attempt, and where its delivery goes next."""

    delivery_id: int
    attempt_id: int
    outcome: Outcome
    state: DeliveryState  # the delivery's new state
    started_at: float
    finished_at: float
    http_status: int | None = None
    error_code: str | None = None
    provider_id: str | None = None
    detail: str | None = None
    next_attempt_at: float | None = None

    @property
    def latency_ms(self) -> float:
        return round((self.finished_at - self.started_at) * 1000, 3)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    alert_id: str
    channel_id: str
    recipient: str | None
    language: str
    state: DeliveryState
    attempts: int
    provider_id: str | None
    last_error: str | None
    home_channel: str | None = None  # the channel the outbox gave it, when failover moved it (channel_id is now)

    @property
    def moved_from(self) -> str | None:
        """The channel this delivery moved away from (failover), if it is no longer on it."""
        return self.home_channel if self.home_channel not in (None, self.channel_id) else None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    alert_id: str
    channel: str
    recipient: str | None
    language: str
    attempt: int
    outcome: Outcome | None
    http_status: int | None
    error_code: str | None
    provider_id: str | None
    started_at: float
    finished_at: float | None
    latency_ms: float | None
    detail: str | None

    def as_json(self) -> dict[str, Any]:
        """One line of ``broadcaster log --json`` (and of ``GET /api/alerts/{id}/log``)."""
        return {
            "alert_id": self.alert_id,
            "channel": self.channel,
            "recipient": self.recipient,
            "language": self.language,
            "attempt": self.attempt,
            "outcome": self.outcome or "in-flight",
            "http_status": self.http_status,
            "error_code": self.error_code,
            "provider_id": self.provider_id,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at) if self.finished_at is not None else None,
            "latency_ms": self.latency_ms,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class NodeRow:
    """A process sharing the database (``broadcaster nodes``)."""

    id: str  # host:pid:token, the lease owner tag on what it claims
    host: str
    pid: int
    role: str
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    leases: int = 0
    lease_until: float | None = None  # the earliest of its leases to run out


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A runbook run, a rehearsal, or a scheduled fire (``runs`` table)."""

    id: str
    kind: RunKind
    runbook: str  # runbook id (file stem), or the template id of a scheduled fire
    source: str | None  # the runbook file it was started from
    spec: dict[str, Any]  # the runbook as it was when the run started
    config: str | None  # channels.toml the run was started with
    mode: Mode
    inputs: dict[str, dict[str, str]]  # input name -> language -> value (relative times resolved)
    state: RunState
    started_at: float
    finished_at: float | None = None
    detail: str | None = None
    started_by: str | None = None  # the user who started it: a held step's alert is their request


@dataclass(frozen=True, slots=True)
class RunStepRow:
    """One step occurrence of a run (``run_steps`` table)."""

    run_id: str
    step_id: str
    occurrence: int
    state: StepState
    due_at: float | None
    confirmed_at: float | None
    fired_at: float | None
    alert_id: str | None
    owner: str | None
    detail: str | None

    @property
    def done(self) -> bool:
        return self.state in (StepState.FIRED, StepState.FAILED, StepState.MISSED, StepState.SKIPPED)
