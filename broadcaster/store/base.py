"""The narrow store interface the engine depends on.

Claim a batch of due deliveries with a lease (writing each attempt's intent in
the same transaction), then record outcomes in batches. A PostgreSQL backend
can implement the same calls with ``FOR UPDATE SKIP LOCKED``.

Delivery states::

    pending ──claim──▶ sending ──▶ sent
       ▲                  │  ├──▶ failed     permanent error, or gave up at expiry
       └──── retry ───────┘  └──▶ unknown    the request may have left; reconcile first
    pending ──(past expires)──▶ expired
    pending ──(cancelled)──────▶ withdrawn
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

TERMINAL = frozenset({"sent", "failed", "expired", "withdrawn"})


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: str
    template: str
    template_hash: str
    mode: str  # dry-run | exercise | live
    msg_type: str  # Alert | Update | Cancel
    references: str | None  # id of the alert this one updates or cancels
    sent_at: float  # unix seconds
    expires_at: float
    areas: tuple[str, ...]
    channels: tuple[str, ...]
    inputs: dict[str, dict[str, str]]
    forms: dict[str, dict[str, str]]
    created_by: str = "cli"


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
class Claimed:
    """A delivery leased to this worker, with its attempt intent already written."""

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
    previous_state: str  # "pending", or "unknown" when it must be reconciled first
    sent_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, and where its delivery goes next."""

    delivery_id: int
    attempt_id: int
    outcome: str  # sent | retry | failed | unknown | expired | reconciled
    state: str  # the delivery's new state
    started_at: float
    finished_at: float
    http_status: int | None = None
    error_code: str | None = None
    provider_id: str | None = None
    detail: str | None = None
    next_attempt_at: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    alert_id: str
    channel_id: str
    recipient: str | None
    language: str
    state: str
    attempts: int
    provider_id: str | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    alert_id: str
    channel: str
    recipient: str | None
    language: str
    attempt: int
    outcome: str | None
    http_status: int | None
    error_code: str | None
    provider_id: str | None
    started_at: float
    finished_at: float | None
    latency_ms: float | None
    detail: str | None

    def as_json(self) -> dict[str, Any]:
        from broadcaster.timefmt import iso

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


class Store(Protocol):
    """What the engine needs from durable storage."""

    def create_alert(
        self, alert: AlertRecord, messages: list[MessageRecord], deliveries: Iterable[NewDelivery]
    ) -> tuple[int, int]:
        """Commit an alert with every delivery ``pending`` in one transaction.

        Returns (deliveries created, duplicate recipients skipped).
        """
        ...

    def claim(
        self, channel_id: str, alert_ids: tuple[str, ...] | None, limit: int, now: float, lease_s: float, owner: str,
        modes: tuple[str, ...] | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries of ``channel_id`` (of ``alert_ids``, of alerts in ``modes``).

        Each claimed delivery has its attempt row written in the same transaction.
        Concurrent claimers, in this process or on other nodes, never get the same delivery.
        """
        ...

    def next_due(self, channel_id: str, alert_ids: tuple[str, ...] | None,
                 modes: tuple[str, ...] | None = None) -> float | None: ...

    def record(self, outcomes: list[Outcome]) -> None: ...

    def expire(self, now: float, alert_ids: tuple[str, ...] | None = None) -> int: ...

    def recover_orphans(self, now: float, is_dead: Any) -> int: ...

    def withdraw(self, alert_id: str, reason: str) -> int: ...

    def recipients(self, alert_id: str, channel_id: str, states: tuple[str, ...]) -> Iterator[tuple[str, str]]: ...

    def provider_ids(self, alert_id: str) -> dict[tuple[str, str | None, str], str]: ...

    def alert(self, alert_id: str) -> AlertRecord: ...

    def alerts(self, limit: int = 50) -> list[AlertRecord]: ...

    def deliveries(self, alert_id: str) -> list[DeliveryRow]: ...

    def attempts(self, alert_id: str) -> Iterator[AttemptRow]: ...

    def state_counts(self, alert_id: str) -> dict[str, dict[str, int]]: ...

    def unfinished_alerts(self) -> list[str]: ...

    def reserve_slots(self, channel_id: str, count: int, interval_s: float) -> tuple[float, float]:
        """Take the channel's next ``count`` send slots, shared by every process on this database.

        Returns ``(first slot, now)`` in the database's clock; the slots are
        ``interval_s`` apart. Slots are never handed out twice, nor inside a pause.
        """
        ...

    def pause_slots(self, channel_id: str, seconds: float) -> None:
        """No process gets a slot of ``channel_id`` for ``seconds`` (a provider said 429)."""
        ...

    def held(self, alert_id: str | None = None) -> list[DeliveryRow]: ...

    def release_held(self, alert_id: str, channel_id: str, *, resend: bool, now: float, note: str) -> int: ...

    # --- nodes sharing the database (broadcaster.engine.node) ---

    def register_node(self, node_id: str, role: str, now: float) -> None: ...

    def heartbeat(self, node_id: str, now: float, lease_s: float) -> int: ...

    def stop_node(self, node_id: str, now: float) -> None: ...

    def nodes(self, since: float) -> list[NodeRow]: ...

    def stale_nodes(self, before: float) -> set[str]: ...

    def queue_depths(self) -> dict[str, dict[str, int]]: ...

    def close(self) -> None: ...


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
