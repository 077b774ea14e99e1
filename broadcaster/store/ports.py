"""The narrow, awaitable interfaces the rest of the system uses; both backends implement each.

* :class:`Alerts`: alerts, the outbox commit and every read of deliveries and attempts;
* :class:`Leases`: the engine's claim path (claim with a lease, record outcomes, expire, recover);
* :class:`Slots`: each channel's send slots, shared by every process on the database;
* :class:`Runs`: runbook runs and their steps (the schedule);
* :class:`Nodes`: the processes sharing the database, their heartbeats;
* :class:`Leadership`: which host leads the runbook scheduler;
* :class:`Wakeups`: being told the moment an alert is committed anywhere.

Nothing outside ``broadcaster/store/`` imports a backend; it asks
:func:`broadcaster.store.open_store` for a :class:`~broadcaster.store.Store`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from broadcaster.states import DeliveryState, Mode, RunState, StepState
from broadcaster.store.records import (
    AlertRecord,
    AttemptResult,
    AttemptRow,
    AudienceCopy,
    Claimed,
    DeliveryRow,
    MessageRecord,
    NewDelivery,
    NodeRow,
    RunRecord,
    RunStepRow,
    StepClaim,
)


class Alerts(Protocol):
    async def create(self, alert: AlertRecord, messages: Sequence[MessageRecord],
                     deliveries: AsyncIterable[Sequence[NewDelivery]],
                     copies: Sequence[AudienceCopy] = (), step: StepClaim | None = None,
                     withdraw: str | None = None) -> tuple[int, int]:
        """Commit the outbox in one transaction; ``withdraw``: a cancel's original, whose undelivered
        deliveries are withdrawn in it."""
        ...

    async def get(self, alert_id: str) -> AlertRecord: ...

    async def find(self, alert_id: str) -> AlertRecord | None: ...

    async def recent(self, limit: int = 50) -> list[AlertRecord]: ...

    async def current(self, mode: Mode, now: float, limit: int) -> list[AlertRecord]: ...

    async def withdraw(self, alert_id: str, reason: str) -> int: ...

    async def audience(self, alert_id: str, channel_id: str, states: Sequence[DeliveryState]) -> dict[str, int]: ...

    async def provider_ids(self, alert_id: str) -> dict[tuple[str, str | None, str], str]: ...

    async def deliveries(self, alert_id: str, *, limit: int | None = None, offset: int = 0) -> list[DeliveryRow]: ...

    async def count(self, alert_id: str) -> int: ...

    def attempts(self, alert_id: str) -> AsyncIterator[AttemptRow]: ...

    async def messages(self, alert_id: str) -> list[MessageRecord]: ...

    async def follow_ups(self, alert_id: str) -> list[AlertRecord]: ...

    async def first_accepted(self, alert_id: str) -> float | None: ...

    async def state_counts(self, alert_id: str) -> dict[str, dict[str, int]]: ...

    async def unfinished(self) -> list[str]: ...

    async def held(self, alert_id: str | None = None) -> list[DeliveryRow]: ...

    async def release_held(self, alert_id: str, channel_id: str, *, resend: bool, now: float,
                           note: str) -> int: ...


class Leases(Protocol):
    async def claim(self, channel_id: str, *, limit: int, now: float, lease_s: float, owner: str,
                    alert_ids: Sequence[str] | None = None,
                    modes: Sequence[Mode] | None = None) -> list[Claimed]: ...

    async def record(self, results: Sequence[AttemptResult]) -> None: ...

    async def next_due(self, channel_id: str, *, alert_ids: Sequence[str] | None = None,
                       modes: Sequence[Mode] | None = None) -> float | None: ...

    async def expire(self, now: float, alert_ids: Sequence[str] | None = None) -> int: ...

    async def owners(self) -> set[str]: ...

    async def recover(self, now: float, dead: Collection[str]) -> int: ...

    async def queue_depths(self) -> dict[str, dict[str, int]]: ...


class Slots(Protocol):
    async def reserve(self, channel_id: str, count: int, interval_s: float) -> tuple[float, float]: ...

    async def pause(self, channel_id: str, seconds: float) -> None: ...


class Runs(Protocol):
    async def create(self, run: RunRecord) -> None: ...

    async def find(self, run_id: str) -> RunRecord | None: ...

    async def get(self, run_id: str) -> RunRecord: ...

    async def recent(self, states: Sequence[RunState] | None = None, limit: int = 100) -> list[RunRecord]: ...

    async def end(self, run_id: str, state: RunState, now: float, detail: str | None = None) -> bool: ...

    async def steps(self, run_id: str) -> list[RunStepRow]: ...

    async def scheduled(self) -> list[RunStepRow]: ...

    async def held(self, alert_id: str | None = None) -> list[RunStepRow]: ...

    async def put_step(self, run_id: str, step_id: str, occurrence: int, state: StepState, due_at: float | None,
                       *, confirmed_at: float | None = None, detail: str | None = None) -> bool: ...

    async def move_step(self, run_id: str, step_id: str, occurrence: int, *, from_states: Sequence[StepState],
                        to_state: StepState, owner_is: str | None = None, uncommitted: bool = False,
                        **fields: float | str | None) -> bool: ...


class Nodes(Protocol):
    async def register(self, node_id: str, role: str) -> None: ...

    async def heartbeat(self, node_id: str, lease_until: float) -> int: ...

    async def stop(self, node_id: str) -> None: ...

    async def recent(self, within_s: float) -> list[NodeRow]: ...

    async def silent(self, after_s: float) -> set[str]: ...

    async def gone(self, ids: Collection[str], after_s: float) -> set[str]: ...

    async def now(self) -> float: ...


class Leadership(Protocol):
    async def try_lead(self, name: str, holder: str, lease_s: float) -> bool: ...

    async def release(self, name: str, holder: str) -> None: ...

    async def holder(self, name: str) -> str | None: ...


class Wakeups(Protocol):
    def listening(self, wake: Callable[[list[str] | None], None]) -> AbstractAsyncContextManager[None]:
        """While the block runs, ``wake(channels)`` hears of every alert committed (None: wake all)."""
        ...
