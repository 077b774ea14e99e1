"""Fan deliveries out to every channel at once.

Each channel gets its own worker with its own rate limiter, so a slow, paused
or dead channel never delays another. A worker repeats one loop, the only
retry loop in the project:

    claim due deliveries (intent written) → wait for a rate slot → send
    → record the outcome (sent | retry later | failed | unknown)

A retryable failure goes back to ``pending`` with a backoff time; the same loop
picks it up again when it is due. A delivery whose request may have left
(``unknown``) is reconciled with the provider before any resend where the
provider allows it, and otherwise follows the channel's ``on_unknown`` policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from broadcaster.channels.base import Channel, OutboundMessage, Receipt
from broadcaster.clock import Clock
from broadcaster.engine.ratelimit import RATE_HEADROOM, RateLimiter, SharedSlots
from broadcaster.engine.retry import RetryPolicy
from broadcaster.errors import DeliveryError, Reason
from broadcaster.store.base import Claimed, Outcome, Store

log = logging.getLogger("broadcaster.dispatch")

ProgressHook = Callable[[str, str], None]  # (channel_id, new state)
OutcomeObserver = Callable[[str, Outcome], None]  # (channel_id, recorded outcome), e.g. for metrics


def process_owner() -> str:
    """Lease owner tag: host, pid and a random token (pids get reused)."""
    return f"{os.uname().nodename}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Tuning:
    max_in_flight: int = 64  # concurrent requests per channel
    max_batch: int = 500
    flush_every_s: float = 0.05
    flush_at: int = 256
    max_idle_sleep_s: float = 5.0
    # A long-running worker with nothing due looks again this often; LISTEN/NOTIFY (PostgreSQL) wakes it sooner.
    idle_poll_s: float = 1.0


class Waker:
    """Wakes idle channel workers when new deliveries are committed (by NOTIFY, or in-process)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def event(self, channel_id: str) -> asyncio.Event:
        return self._events.setdefault(channel_id, asyncio.Event())

    def wake(self, channel_ids: Iterable[str] | None = None) -> None:
        """Wake the workers of ``channel_ids`` (every worker when None)."""
        for cid in self._events if channel_ids is None else channel_ids:
            if cid in self._events:
                self._events[cid].set()


class OutcomeWriter:
    """Buffers outcomes and writes them in batches: one transaction, many attempts."""

    def __init__(self, store: Store, tuning: Tuning) -> None:
        self.store = store
        self.tuning = tuning
        self.buffer: list[Outcome] = []

    def add(self, outcome: Outcome) -> None:
        self.buffer.append(outcome)
        if len(self.buffer) >= self.tuning.flush_at:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            batch, self.buffer = self.buffer, []
            self.store.record(batch)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tuning.flush_every_s)
            self.flush()


class Dispatcher:
    """Runs every channel's worker until its due deliveries are done."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        clock: Clock | None = None,
        policy: RetryPolicy | None = None,
        tuning: Tuning | None = None,
        rng: random.Random | None = None,
        progress: ProgressHook | None = None,
        owner: str | None = None,
        observer: OutcomeObserver | None = None,
        shared_rates: bool = False,
    ) -> None:
        self.store = store
        self.channels = channels
        self.clock = clock or Clock()
        self.policy = policy or RetryPolicy()
        self.tuning = tuning or Tuning()
        self.rng = rng or random.Random()
        self.progress = progress
        self.observer = observer
        self.owner = owner or process_owner()
        self.writer = OutcomeWriter(store, self.tuning)
        # With shared rates, every process on the database draws this channel's slots from the store.
        self.limiters = {cid: self._limiter(store, cid, ch.rate_per_second * RATE_HEADROOM, shared_rates)
                         for cid, ch in channels.items()}

    def _limiter(self, store: Store, channel_id: str, rate: float, shared: bool) -> RateLimiter:
        return RateLimiter(rate, self.clock, shared=SharedSlots(store, channel_id, rate) if shared else None)

    async def run(self, alert_ids: tuple[str, ...] | None = None, *, modes: tuple[str, ...] | None = None,
                  waker: Waker | None = None) -> None:
        """Deliver everything due for ``alert_ids`` (all alerts when None) of ``modes``, retries included.

        With a ``waker`` it never returns: an idle worker waits for the waker or
        the next due retry (``broadcaster worker``). Without one it returns once
        nothing is left to do.
        """
        self.store.expire(self.clock.now(), alert_ids)
        flusher = asyncio.create_task(self.writer.run())
        try:
            async with asyncio.TaskGroup() as group:
                for channel in self.channels.values():
                    group.create_task(self._worker(channel, alert_ids, modes, waker), name=f"worker:{channel.id}")
        finally:
            flusher.cancel()
            self.writer.flush()

    async def _worker(self, channel: Channel, alert_ids: tuple[str, ...] | None, modes: tuple[str, ...] | None,
                      waker: Waker | None) -> None:
        limiter = self.limiters[channel.id]
        slots = asyncio.Semaphore(self.tuning.max_in_flight)
        in_flight: set[asyncio.Task[None]] = set()
        batch_size = max(1, min(self.tuning.max_batch, int(channel.rate_per_second * 2)))
        # The lease covers waiting for rate slots plus the request itself.
        lease_s = 60.0 + batch_size / channel.rate_per_second + 2 * channel.config.timeout_s
        wake = waker.event(channel.id) if waker is not None else None
        while True:
            if wake is not None:
                wake.clear()  # cleared before the claim: a commit after it wakes the next wait
            now = self.clock.now()
            batch = self.store.claim(channel.id, alert_ids, batch_size, now, lease_s, self.owner, modes)
            for claimed in batch:
                await slots.acquire()
                await limiter.acquire()
                task = asyncio.create_task(self._attempt(channel, limiter, claimed))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                task.add_done_callback(lambda _t: slots.release())
            if batch:
                continue
            if in_flight:
                await asyncio.wait(set(in_flight), return_when=asyncio.FIRST_COMPLETED)
                self.writer.flush()
                continue
            self.writer.flush()
            if wake is None:  # a long-running worker's node expires every alert as it beats (engine.node)
                self.store.expire(self.clock.now(), alert_ids)
            due = self.store.next_due(channel.id, alert_ids, modes)
            if wake is not None:
                until_due = self.tuning.idle_poll_s if due is None else max(0.0, due - self.clock.now())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(until_due, self.tuning.idle_poll_s))
                continue
            if due is None:
                return
            await self.clock.sleep(min(max(0.0, due - self.clock.now()), self.tuning.max_idle_sleep_s))

    async def _attempt(self, channel: Channel, limiter: RateLimiter, claimed: Claimed) -> None:
        started = self.clock.now()
        if started >= claimed.expires_at:
            self._record(channel, claimed, "expired", "expired", started, detail="alert expired; not attempted")
            return
        message = OutboundMessage(
            delivery_id=claimed.delivery_id, alert_id=claimed.alert_id, channel_id=claimed.channel_id,
            language=claimed.language, text=claimed.text, recipient=claimed.recipient,
            reply_to=claimed.reply_to, payload=claimed.payload,
        )
        try:
            if claimed.previous_state == "unknown" and channel.can_reconcile:
                since = datetime.fromtimestamp(claimed.sent_at, UTC)
                found = await channel.reconcile(message, since=since)
                if found is not None:
                    self._sent(channel, claimed, found, started, outcome="reconciled")
                    return
            receipt = await channel.send(message)
        except DeliveryError as err:
            self._failed(channel, limiter, claimed, err, started)
        except Exception as exc:  # an adapter bug: the request may have left, so never resend blindly
            log.exception("channel %s raised an unexpected error", channel.id)
            unexpected = DeliveryError(Reason.NETWORK, f"unexpected {type(exc).__name__}", retryable=True,
                                       sent_maybe=True)
            self._failed(channel, limiter, claimed, unexpected, started)
        else:
            self._sent(channel, claimed, receipt, started)

    def _sent(self, channel: Channel, claimed: Claimed, receipt: Receipt, started: float,
              *, outcome: str = "sent") -> None:
        self._record(channel, claimed, outcome, "sent", started, http_status=receipt.http_status,
                     provider_id=receipt.provider_id, detail=receipt.note)

    def _failed(self, channel: Channel, limiter: RateLimiter, claimed: Claimed, err: DeliveryError,
                started: float) -> None:
        now = self.clock.now()
        if err.reason is Reason.RATE_LIMITED:
            # A 429 pauses this channel only; the others keep their own pace.
            limiter.pause(err.retry_after if err.retry_after is not None else limiter.min_interval_s * 10)
        detail = f"{err.reason.value}: {err}"
        code = err.provider_code
        if not err.retryable:
            self._record(channel, claimed, "failed", "failed", started, err.http_status, code, detail=detail)
            return
        if err.sent_maybe:
            if channel.can_reconcile:
                when: float | None = now + self.policy.reconcile_after_s
            elif channel.on_unknown == "resend":
                when = self.policy.next_attempt_at(now, claimed.attempt, err.retry_after, claimed.expires_at,
                                                   self.rng)
            else:
                when = None  # held for an operator
            state = "unknown" if when is None or when < claimed.expires_at else "failed"
            self._record(channel, claimed, "unknown", state, started, err.http_status, code, detail=detail,
                         next_attempt_at=when if state == "unknown" else None)
            return
        when = self.policy.next_attempt_at(now, claimed.attempt, err.retry_after, claimed.expires_at, self.rng)
        if when is None:
            self._record(channel, claimed, "failed", "failed", started, err.http_status, code,
                         detail=detail + " (gave up: the alert expires before another try)")
        else:
            self._record(channel, claimed, "retry", "pending", started, err.http_status, code, detail=detail,
                         next_attempt_at=when)

    def _record(
        self, channel: Channel, claimed: Claimed, outcome: str, state: str, started: float,
        http_status: int | None = None, error_code: str | None = None, *, provider_id: str | None = None,
        detail: str | None = None, next_attempt_at: float | None = None,
    ) -> None:
        recorded = Outcome(
            delivery_id=claimed.delivery_id, attempt_id=claimed.attempt_id, outcome=outcome, state=state,
            started_at=started, finished_at=self.clock.now(), http_status=http_status, error_code=error_code,
            provider_id=provider_id, detail=detail, next_attempt_at=next_attempt_at,
        )
        self.writer.add(recorded)
        if self.observer is not None:
            try:
                self.observer(channel.id, recorded)
            except Exception:  # metrics are never worth a lost delivery
                log.exception("outcome observer failed for channel %s", channel.id)
        if self.progress is not None:
            self.progress(channel.id, state)

