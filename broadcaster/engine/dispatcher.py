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

Every send happens behind a :class:`~broadcaster.engine.node.Fence`: a node
whose leases may have been taken over (it stalled past its margin) sends
nothing more of what it claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from broadcaster.channels import gate
from broadcaster.channels.base import Channel, OutboundMessage, Receipt
from broadcaster.clock import Clock
from broadcaster.engine.failover import Failover
from broadcaster.engine.node import Fence, Unfenced, Waker
from broadcaster.engine.ratelimit import RATE_HEADROOM, RateLimiter, SharedSlots
from broadcaster.engine.retry import RetryPolicy
from broadcaster.errors import DeliveryError, Reason, StoreError
from broadcaster.states import CircuitState, DeliveryState, Mode, OnUnknown, Outcome
from broadcaster.store import Store
from broadcaster.store.ports import Leases
from broadcaster.store.records import AttemptResult, Claimed

log = logging.getLogger("broadcaster.dispatch")

ProgressHook = Callable[[str, DeliveryState], None]  # (channel_id, new state)
OutcomeObserver = Callable[[str, AttemptResult], None]  # (channel_id, recorded outcome), e.g. for metrics
STORE_PAUSE_S = 0.2  # after a retryable store error, a channel worker waits this long, doubling to the max
STORE_PAUSE_MAX_S = 5.0


@dataclass
class Tuning:
    max_in_flight: int = 64  # concurrent requests per channel
    max_batch: int = 500
    flush_every_s: float = 0.05
    flush_at: int = 256
    max_idle_sleep_s: float = 5.0
    # A long-running worker with nothing due looks again this often; LISTEN/NOTIFY (PostgreSQL) wakes it sooner.
    idle_poll_s: float = 1.0


class OutcomeWriter:
    """Buffers outcomes and writes them in batches (one transaction, many attempts), each flush awaited."""

    def __init__(self, leases: Leases, tuning: Tuning) -> None:
        self.leases = leases
        self.tuning = tuning
        self.buffer: list[AttemptResult] = []

    async def add(self, result: AttemptResult) -> None:
        self.buffer.append(result)
        if len(self.buffer) >= self.tuning.flush_at:
            await self.try_flush()

    async def try_flush(self) -> None:
        """Flush; a retryable store error leaves the outcomes buffered for the next flush."""
        try:
            await self.flush()
        except StoreError as exc:
            if not exc.retryable:
                raise
            log.warning("recording outcomes failed (%s); they are kept and written at the next flush", exc)

    async def flush(self) -> None:
        while self.buffer:
            batch, self.buffer = self.buffer, []
            try:
                await self.leases.record(batch)
            except BaseException:
                self.buffer[:0] = batch  # never lost: written by the next flush
                raise

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tuning.flush_every_s)
            await self.try_flush()


@dataclass
class _Lane:
    """One channel's worker state: its limiter, its in-flight requests, its batch and lease sizes."""

    channel: Channel
    limiter: RateLimiter
    slots: asyncio.Semaphore
    batch_size: int
    lease_s: float
    wake: asyncio.Event | None
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    failover: Failover | None = None  # this channel names a fallback: its circuit and moves


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
        fence: Fence | None = None,
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
        self.fence = fence or Unfenced()
        self.writer = OutcomeWriter(store.leases, self.tuning)
        self.abandoned = 0  # claimed deliveries left unsent because the fence no longer held
        # With shared rates, every process on the database draws this channel's slots from the store.
        self.limiters = {cid: self._limiter(cid, ch.rate_per_second * RATE_HEADROOM, shared_rates)
                         for cid, ch in channels.items()}
        # SMS failover: a channel whose fallback is open in this run gets a circuit; its fallback's worker stays
        # up (nudged when deliveries move to it) while any of its primaries still works.
        self.nudges = {cid: asyncio.Event() for cid in channels}
        self.failovers = {
            cid: Failover(store, ch.config, ch.config.fallback, clock=self.clock, fence=self.fence,
                          batch=self.tuning.max_batch, nudge=functools.partial(self._nudge, ch.config.fallback),
                          observer=observer)
            for cid, ch in channels.items() if ch.config.fallback is not None and ch.config.fallback in channels}
        self._working: set[str] = set()  # channels whose worker has not returned yet
        self._wakes: dict[str, asyncio.Event] = {}  # long-running workers' wake events

    def _nudge(self, channel_id: str) -> None:
        """Deliveries moved to ``channel_id``: its worker looks at once."""
        self.nudges[channel_id].set()
        wake = self._wakes.get(channel_id)
        if wake is not None:
            wake.set()

    def _limiter(self, channel_id: str, rate: float, shared: bool) -> RateLimiter:
        return RateLimiter(rate, self.clock, shared=SharedSlots(self.store.slots, channel_id, rate) if shared else None)

    async def run(self, alert_ids: Sequence[str] | None = None, *, modes: Sequence[Mode] | None = None,
                  waker: Waker | None = None) -> None:
        """Deliver everything due for ``alert_ids`` (all alerts when None) of ``modes``, retries included.

        With a ``waker`` it never returns: an idle worker waits for the waker or
        the next due retry (``broadcaster worker``). Without one it returns once
        nothing is left to do.
        """
        await self.store.leases.expire(self.clock.now(), alert_ids)
        flusher = asyncio.create_task(self.writer.run())
        try:
            async with asyncio.TaskGroup() as group:
                for channel in self.channels.values():
                    group.create_task(self._worker(channel, alert_ids, modes, waker), name=f"worker:{channel.id}")
        except BaseExceptionGroup as failed:
            # Channels that all hit a store error (a full disk) report it once, as the store's own error.
            leaves = _leaves(failed)
            if not all(isinstance(exc, StoreError) for exc in leaves):
                raise
            raise leaves[0] from None
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self.writer.flush()

    async def _worker(self, channel: Channel, alert_ids: Sequence[str] | None, modes: Sequence[Mode] | None,
                      waker: Waker | None) -> None:
        batch_size = max(1, min(self.tuning.max_batch, int(channel.rate_per_second * 2)))
        lane = _Lane(
            channel=channel, limiter=self.limiters[channel.id], slots=asyncio.Semaphore(self.tuning.max_in_flight),
            batch_size=batch_size,
            # The lease covers waiting for rate slots plus the request itself.
            lease_s=60.0 + batch_size / channel.rate_per_second + 2 * channel.config.timeout_s,
            wake=waker.event(channel.id) if waker is not None else None,
        )
        lane.failover = self.failovers.get(channel.id)
        if lane.wake is not None:
            self._wakes[channel.id] = lane.wake
        self._working.add(channel.id)
        try:
            await self._work(lane, alert_ids, modes)
        finally:
            self._working.discard(channel.id)
            if lane.failover is not None:
                self.nudges[lane.failover.fallback].set()  # its fallback may finish now

    def _backs_up_a_working_channel(self, channel_id: str) -> bool:
        return any(f.fallback == channel_id and f.primary in self._working for f in self.failovers.values())

    async def _work(self, lane: _Lane, alert_ids: Sequence[str] | None, modes: Sequence[Mode] | None) -> None:
        channel = lane.channel
        pause = STORE_PAUSE_S
        while True:
            self.nudges[channel.id].clear()  # before the claim: a move after it wakes the wait below
            try:
                if await self._turn(lane, alert_ids, modes):
                    if not self._backs_up_a_working_channel(channel.id):
                        return
                    # A fallback stays up while its primary works: deliveries may yet move to it.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.nudges[channel.id].wait(), self.tuning.idle_poll_s)
                    continue
                pause = STORE_PAUSE_S
            except StoreError as exc:
                if not exc.retryable:
                    raise
                # The database is busy, away or broke a deadlock: nothing is lost (the outcome buffer keeps
                # what it could not write, and a claim that failed claimed nothing); try again shortly.
                log.warning("channel %s: the store failed (%s); trying again in %.1f s", channel.id, exc, pause)
                await self.clock.sleep(pause)
                pause = min(STORE_PAUSE_MAX_S, pause * 2)

    async def _turn(self, lane: _Lane, alert_ids: Sequence[str] | None, modes: Sequence[Mode] | None) -> bool:
        """One round of a channel's loop: claim and start a batch, or wait. True when nothing is left to do."""
        leases, channel = self.store.leases, lane.channel
        await self.fence.wait()
        if lane.wake is not None:
            lane.wake.clear()  # cleared before the claim: a commit after it wakes the next wait
        owner = self.fence.id
        limit = lane.batch_size
        failover = lane.failover
        if failover is not None:
            limit = await failover.before_claim(self.writer.flush, owner, alert_ids, modes, batch_size=lane.batch_size,
                                                busy=bool(lane.in_flight))
        batch = await leases.claim(channel.id, limit=limit, now=self.clock.now(), lease_s=lane.lease_s,
                                   owner=owner, alert_ids=alert_ids, modes=modes) if limit else []
        for index, claimed in enumerate(batch):
            if not await self._may_start(lane):
                await self._unstarted(channel, batch[index:])  # the circuit opened: these move with the rest
                break
            task = asyncio.create_task(self._attempt(channel, lane.limiter, claimed, owner))
            lane.in_flight.add(task)
            task.add_done_callback(lane.in_flight.discard)
            task.add_done_callback(lambda _t: lane.slots.release())
        if failover is not None and limit == 1 and not batch:
            failover.circuit.release_trial()  # half-open, but nothing due here to try with
        if batch:
            return False
        if failover is not None and failover.circuit.state is CircuitState.OPEN:
            return await failover.while_open(lane.in_flight, self.writer.flush, alert_ids, modes,
                                             long_running=lane.wake is not None,
                                             max_sleep_s=self.tuning.max_idle_sleep_s)
        if lane.in_flight:
            await asyncio.wait(set(lane.in_flight), return_when=asyncio.FIRST_COMPLETED)
            await self.writer.flush()
            return False
        await self.writer.flush()
        if lane.wake is None:  # a long-running worker's node expires every alert as it beats (engine.node)
            await leases.expire(self.clock.now(), alert_ids)
        due = await leases.next_due(channel.id, alert_ids=alert_ids, modes=modes)
        if lane.wake is not None:
            until_due = self.tuning.idle_poll_s if due is None else max(0.0, due - self.clock.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.wake.wait(), min(until_due, self.tuning.idle_poll_s))
            return False
        if due is None:
            return True
        await self.clock.sleep(min(max(0.0, due - self.clock.now()), self.tuning.max_idle_sleep_s))
        return False

    async def _may_start(self, lane: _Lane) -> bool:
        """A send slot for the next claimed delivery; False when the channel's circuit opened meanwhile."""
        if lane.failover is not None:
            return await lane.failover.may_start(lane.slots, lambda: self._slot(lane))
        await lane.slots.acquire()
        await self._slot(lane)
        return True

    async def _unstarted(self, channel: Channel, rest: Sequence[Claimed]) -> None:
        """Claimed deliveries the primary will not start (its circuit opened): pending again, due now, unsent."""
        now = self.clock.now()
        for claimed in rest:
            await self._record(channel, claimed, Outcome.RETRY, DeliveryState.PENDING, now,
                               detail="not sent: the channel's circuit opened first", next_attempt_at=now)
        await self.writer.flush()

    async def _slot(self, lane: _Lane) -> None:
        """A send slot; a shared ledger the store cannot reach now is asked again, never given up on.

        Giving up would strand the rest of a claimed batch under this node's lease.
        """
        pause = STORE_PAUSE_S
        while True:
            try:
                await lane.limiter.acquire()
                return
            except StoreError as exc:
                if not exc.retryable:
                    raise
                log.warning("channel %s: no send slot from the store (%s); asking again", lane.channel.id, exc)
                await self.clock.sleep(pause)
                pause = min(STORE_PAUSE_MAX_S, pause * 2)

    async def _attempt(self, channel: Channel, limiter: RateLimiter, claimed: Claimed, owner: str) -> None:
        try:
            await self._attempt_once(channel, limiter, claimed, owner)
        finally:
            failover = self.failovers.get(channel.id)
            if failover is not None and failover.circuit.state is CircuitState.HALF_OPEN:
                failover.circuit.release_trial()  # the trial asked nothing of the provider (expired, fenced ...)

    async def _attempt_once(self, channel: Channel, limiter: RateLimiter, claimed: Claimed, owner: str) -> None:
        if not self.fence.holds(owner):
            # This node stalled past its margin: another node may own the delivery now. Nothing is sent or
            # recorded; the lease is recovered as unknown and reconciled before any resend.
            self.abandoned += 1
            return
        started = self.clock.now()
        if started >= claimed.expires_at:
            await self._record(channel, claimed, Outcome.EXPIRED, DeliveryState.EXPIRED, started,
                               detail="alert expired; not attempted")
            return
        if (claimed.previous_state == DeliveryState.UNKNOWN and not channel.can_reconcile
                and channel.on_unknown == OnUnknown.HOLD):
            # Its node stopped mid-attempt (recovered as unknown): the provider cannot be asked whether it went
            # out, and this channel never resends blindly. It waits for an operator (`broadcaster held`).
            await self._record(channel, claimed, Outcome.UNKNOWN, DeliveryState.UNKNOWN, started,
                               detail="held: an attempt may have gone out before its node stopped; "
                                      "see `broadcaster held`")
            return
        message = OutboundMessage(
            delivery_id=claimed.delivery_id, alert_id=claimed.alert_id, channel_id=claimed.channel_id,
            language=claimed.language, text=claimed.text, recipient=claimed.recipient,
            reply_to=claimed.reply_to, payload=claimed.payload,
        )
        failover = self.failovers.get(channel.id)
        began = self.clock.monotonic()
        # The transports look at the fence once more as the request is about to be written (channels.gate).
        reconciling = False
        with gate.opened(lambda: self.fence.holds(owner)) as attempt_gate:
            try:
                if claimed.previous_state == DeliveryState.UNKNOWN and channel.can_reconcile:
                    reconciling = True
                    since = datetime.fromtimestamp(claimed.sent_at, UTC)
                    found = await channel.reconcile(message, since=since)
                    if found is not None:
                        if failover is not None:
                            failover.record(began, None)
                        await self._sent(channel, claimed, found, started, outcome=Outcome.RECONCILED)
                        return
                    reconciling = False
                receipt = await channel.send(message)
            except Exception as exc:
                if attempt_gate.shut:  # stopped before a byte left, whatever the SDK wrapped it in
                    self.abandoned += 1
                    log.warning("channel %s: delivery %s left unsent; this node's fence no longer holds",
                                channel.id, claimed.delivery_id)
                    return
                if isinstance(exc, DeliveryError):
                    if failover is not None:
                        failover.record(began, exc)
                    if reconciling:
                        # The provider could not say whether it went out: still unknown, asked again later (it
                        # must never become pending, which would resend without asking).
                        exc = DeliveryError(exc.reason, f"could not reconcile: {exc}", retryable=True,
                                            retry_after=exc.retry_after, http_status=exc.http_status,
                                            provider_code=exc.provider_code, sent_maybe=True)
                    await self._failed(channel, limiter, claimed, exc, started)
                    return
                # An adapter bug: the request may have left, so never resend blindly.
                log.exception("channel %s raised an unexpected error", channel.id)
                unexpected = DeliveryError(Reason.NETWORK, f"unexpected {type(exc).__name__}", retryable=True,
                                           sent_maybe=True)
                await self._failed(channel, limiter, claimed, unexpected, started)
                return
        if failover is not None:
            failover.record(began, None)
        await self._sent(channel, claimed, receipt, started)

    async def _sent(self, channel: Channel, claimed: Claimed, receipt: Receipt, started: float,
                    *, outcome: Outcome = Outcome.SENT) -> None:
        await self._record(channel, claimed, outcome, DeliveryState.SENT, started, http_status=receipt.http_status,
                           provider_id=receipt.provider_id, detail=receipt.note)

    async def _failed(self, channel: Channel, limiter: RateLimiter, claimed: Claimed, err: DeliveryError,
                      started: float) -> None:
        now = self.clock.now()
        if err.reason is Reason.RATE_LIMITED:
            # A 429 pauses this channel only; the others keep their own pace.
            try:
                await limiter.pause(err.retry_after if err.retry_after is not None else limiter.min_interval_s * 10)
            except StoreError as exc:  # this node still pauses; the other nodes hear of it at their own 429
                log.warning("channel %s: could not share a 429 pause (%s)", channel.id, exc)
        detail = f"{err.reason.value}: {err}"
        code = err.provider_code
        if not err.retryable:
            await self._record(channel, claimed, Outcome.FAILED, DeliveryState.FAILED, started, err.http_status, code,
                               detail=detail)
            return
        if err.sent_maybe:
            when: float | None
            if channel.can_reconcile:
                when = now + self.policy.reconcile_after_s
            elif channel.on_unknown == OnUnknown.RESEND:
                when = self.policy.next_attempt_at(now, claimed.attempt, err.retry_after, claimed.expires_at,
                                                   self.rng)
            else:
                when = None  # held for an operator
            state = DeliveryState.UNKNOWN if when is None or when < claimed.expires_at else DeliveryState.FAILED
            await self._record(channel, claimed, Outcome.UNKNOWN, state, started, err.http_status, code,
                               detail=detail, next_attempt_at=when if state == DeliveryState.UNKNOWN else None)
            return
        when = self.policy.next_attempt_at(now, claimed.attempt, err.retry_after, claimed.expires_at, self.rng)
        if when is None:
            await self._record(channel, claimed, Outcome.FAILED, DeliveryState.FAILED, started, err.http_status, code,
                               detail=detail + " (gave up: the alert expires before another try)")
        else:
            await self._record(channel, claimed, Outcome.RETRY, DeliveryState.PENDING, started, err.http_status,
                               code, detail=detail, next_attempt_at=when)

    async def _record(
        self, channel: Channel, claimed: Claimed, outcome: Outcome, state: DeliveryState, started: float,
        http_status: int | None = None, error_code: str | None = None, *, provider_id: str | None = None,
        detail: str | None = None, next_attempt_at: float | None = None,
    ) -> None:
        # Every attempt's detail and error code (the attempt log, the delivery's last_error, `log --json`, the
        # API's log) is built here and nowhere else, and leaves with every form of the channel's secrets masked:
        # an echoing provider's text never reaches the database.
        redact = channel.redactor()
        recorded = AttemptResult(
            delivery_id=claimed.delivery_id, attempt_id=claimed.attempt_id, outcome=outcome, state=state,
            started_at=started, finished_at=self.clock.now(), http_status=http_status,
            error_code=redact.clean_optional(error_code), provider_id=provider_id,
            detail=redact.clean_optional(detail), next_attempt_at=next_attempt_at,
        )
        await self.writer.add(recorded)
        if self.observer is not None:
            try:
                self.observer(channel.id, recorded)
            except Exception:  # metrics are never worth a lost delivery
                log.exception("outcome observer failed for channel %s", channel.id)
        if self.progress is not None:
            self.progress(channel.id, state)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [leaf for exc in group.exceptions
            for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])]
