"""The progress of the alerts this server delivers, for its event streams (:mod:`broadcaster.service.events`).

The dispatcher's progress hook (which may run on a dry-run worker thread) hands
each ``(channel, state)`` to the server loop with ``call_soon_threadsafe``. The
hub coalesces them: at most every ``flush_every_s`` (longer when counting takes
long) it reads the counts from the store once and sends one ``progress`` event
per channel and state that changed, so 100,000 SMS do not mean 100,000 count
queries. When the run ends, subscribers get the final counts and ``done``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from broadcaster.engine.dispatcher import ProgressHook
from broadcaster.errors import StoreError
from broadcaster.states import DeliveryState

log = logging.getLogger("broadcaster.service.hub")

Event = tuple[str, dict[str, Any]]
Counts = dict[str, dict[str, int]]
CLOSE: Final[Event] = ("close", {})
OPEN_STATES: Final = frozenset({DeliveryState.PENDING, DeliveryState.SENDING})
OK_STATES: Final = frozenset({DeliveryState.SENT, "delivered"})  # "delivered": a Twilio receipt
KEEPALIVE_S: Final = 15.0
POLL_S: Final = 1.0


def outstanding(counts: Counts) -> int:
    return sum(n for per in counts.values() for state, n in per.items() if state in OPEN_STATES)


def all_ok(counts: Counts) -> bool:
    return bool(counts) and all(state in OK_STATES for per in counts.values() for state in per)


@dataclass
class _Stream:
    running: bool = False
    subscribers: set[asyncio.Queue[Event]] = field(default_factory=set)
    changed: dict[tuple[str, str], None] = field(default_factory=dict)  # ordered set
    flush: asyncio.Task[None] | None = None
    delay: float = 0.1


class EventHub:
    """Per-alert subscriber queues fed from dispatcher progress hooks."""

    def __init__(self, counts: Callable[[str], Awaitable[Counts]], *, flush_every_s: float = 0.1,
                 keepalive_s: float = KEEPALIVE_S, poll_s: float = POLL_S) -> None:
        self.counts = counts
        self.flush_every_s = flush_every_s
        self.keepalive_s = keepalive_s  # also how often a waiting stream re-checks its confirmation window
        self.poll_s = poll_s  # store polling for alerts this process is not delivering
        self._streams: dict[str, _Stream] = {}

    def running(self, alert_id: str) -> bool:
        stream = self._streams.get(alert_id)
        return stream is not None and stream.running

    def open(self, alert_id: str) -> None:
        """A run of ``alert_id`` is starting here (keeps subscribers already waiting for it)."""
        self._streams.setdefault(alert_id, _Stream()).running = True

    def hook(self, alert_id: str, loop: asyncio.AbstractEventLoop) -> ProgressHook:
        """A progress hook safe to call from any thread."""

        def on_progress(channel: str, state: str) -> None:
            loop.call_soon_threadsafe(self._changed, alert_id, channel, state)

        return on_progress

    def _changed(self, alert_id: str, channel: str, state: str) -> None:
        stream = self._streams.get(alert_id)
        if stream is None or not stream.running:
            return
        stream.changed[(channel, state)] = None
        if stream.flush is None:
            stream.flush = asyncio.get_running_loop().create_task(self._flush(alert_id, stream.delay))

    async def _flush(self, alert_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        stream = self._streams.get(alert_id)
        if stream is None:
            return
        stream.flush = None
        changed, stream.changed = list(stream.changed), {}
        if not stream.subscribers or not changed:
            return
        started = time.perf_counter()
        try:
            counts = await self.counts(alert_id)
        except StoreError as exc:  # the next change, or the end of the run, brings the counts again
            log.warning("progress of alert %s not counted: %s", alert_id, exc)
            return
        # Counting 100,000 deliveries takes a while: keep it under a tenth of the database's time.
        stream.delay = max(self.flush_every_s, 10 * (time.perf_counter() - started))
        for channel, state in changed:
            self._publish(stream, ("progress", {"channel": channel, "state": state, "counts": counts}))

    async def finished(self, alert_id: str, *, committed: bool = True) -> None:
        """The run ended: final counts and ``done`` to every subscriber; forget the stream.

        A run that failed before its commit sent nothing: subscribers waiting for a
        two-person fire keep waiting (it may be confirmed again).
        """
        stream = self._streams.get(alert_id)
        if stream is None:
            return
        if stream.flush is not None:
            stream.flush.cancel()
            stream.flush = None
        if not committed:
            stream.running = False
            if not stream.subscribers:
                del self._streams[alert_id]
            return
        del self._streams[alert_id]
        if not stream.subscribers:
            return
        counts = await self.counts(alert_id)
        for channel, state in stream.changed:
            self._publish(stream, ("progress", {"channel": channel, "state": state, "counts": counts}))
        self._publish(stream, ("done", {"alert_id": alert_id, "ok": all_ok(counts), "state": "done"}))

    def subscribe(self, alert_id: str, *, wait: bool) -> asyncio.Queue[Event] | None:
        """A queue of this alert's events; None when no run is here and ``wait`` is false."""
        stream = self._streams.get(alert_id)
        if stream is None:
            if not wait:
                return None
            stream = self._streams[alert_id] = _Stream()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        stream.subscribers.add(queue)
        return queue

    def unsubscribe(self, alert_id: str, queue: asyncio.Queue[Event]) -> None:
        stream = self._streams.get(alert_id)
        if stream is None:
            return
        stream.subscribers.discard(queue)
        if not stream.subscribers and not stream.running:
            del self._streams[alert_id]

    def close_all(self) -> None:
        """Server shutdown: end every open event stream."""
        for stream in self._streams.values():
            for queue in stream.subscribers:
                queue.put_nowait(CLOSE)

    @staticmethod
    def _publish(stream: _Stream, event: Event) -> None:
        for queue in stream.subscribers:
            queue.put_nowait(event)


