"""Server-sent progress of an alert: ``GET /api/alerts/{id}/events``.

The dispatcher's progress hook (which may run on a dry-run worker thread) hands
each ``(channel, state)`` to the server loop with ``call_soon_threadsafe``. The
hub coalesces them: at most every ``flush_every_s`` (longer when counting takes
long) it reads the counts from the store once and sends one ``progress`` event
per channel and state that changed, so 100,000 SMS do not mean 100,000 count
queries. When the run ends, subscribers get the final counts and ``done``.
Counts are the engine's delivery states (sending progress); Twilio receipts
(``delivered``/``undelivered``) show in ``GET /api/alerts/{id}``.

A subscriber first gets the current counts (``channel`` and ``state`` null), so
one that connects late, or to an alert this process is not delivering, still
starts from the truth; ``done`` follows at once when nothing is left to do. An
alert awaiting its second officer streams ``state: awaiting_confirmation`` and
waits for the confirmation (or ``done`` with ``state: not_confirmed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiohttp import web

from broadcaster.engine.dispatcher import ProgressHook
from broadcaster.errors import InputError
from broadcaster.service.http import ApiError
from broadcaster.service.pending import AWAITING, NOT_CONFIRMED
from broadcaster.service.state import SERVICE, Service

Event = tuple[str, dict[str, Any]]
Counts = dict[str, dict[str, int]]
_CLOSE: Final[Event] = ("close", {})
OPEN_STATES: Final = frozenset({"pending", "sending"})
OK_STATES: Final = frozenset({"sent", "delivered"})
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
    flush: asyncio.TimerHandle | None = None
    delay: float = 0.1


class EventHub:
    """Per-alert subscriber queues fed from dispatcher progress hooks."""

    def __init__(self, counts: Callable[[str], Counts], *, flush_every_s: float = 0.1,
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
            stream.flush = asyncio.get_running_loop().call_later(stream.delay, self._flush, alert_id)

    def _flush(self, alert_id: str) -> None:
        stream = self._streams.get(alert_id)
        if stream is None:
            return
        stream.flush = None
        changed, stream.changed = list(stream.changed), {}
        if not stream.subscribers or not changed:
            return
        started = time.perf_counter()
        counts = self.counts(alert_id)
        # Counting 100,000 deliveries takes a while: keep it under a tenth of the loop's time.
        stream.delay = max(self.flush_every_s, 10 * (time.perf_counter() - started))
        for channel, state in changed:
            self._publish(stream, ("progress", {"channel": channel, "state": state, "counts": counts}))

    def finished(self, alert_id: str, *, committed: bool = True) -> None:
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
        counts = self.counts(alert_id)
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
                queue.put_nowait(_CLOSE)

    @staticmethod
    def _publish(stream: _Stream, event: Event) -> None:
        for queue in stream.subscribers:
            queue.put_nowait(event)


async def _send(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    await response.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")


async def handle_events(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    alert_id = request.match_info["alert_id"]
    pending = service.pending.get(alert_id)
    exists = _exists(service, alert_id)
    if not exists and pending is None and not service.hub.running(alert_id):
        raise ApiError(404, "not_found", f"no alert with id {alert_id!r}")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    # Subscribe before reading the snapshot, so no change falls between the two.
    queue = service.hub.subscribe(alert_id, wait=pending is not None and not exists)
    try:
        await _stream(service, response, alert_id, queue)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the client went away, or the server is stopping
    finally:
        if queue is not None:
            service.hub.unsubscribe(alert_id, queue)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def _stream(service: Service, response: web.StreamResponse, alert_id: str,
                  queue: asyncio.Queue[Event] | None) -> None:
    waiting = queue is not None and not _exists(service, alert_id) and not service.hub.running(alert_id)
    if waiting:
        pending = service.pending.get(alert_id)
        assert pending is not None
        state = pending.state_at(service.clock.now())
        await _send(response, "progress", {"channel": None, "state": state, "counts": {}})
        if state != AWAITING:
            await _send(response, "done", {"alert_id": alert_id, "ok": False, "state": state})
            return
    else:
        counts = service.hub.counts(alert_id)
        await _send(response, "progress", {"channel": None, "state": None, "counts": counts})
        if not service.hub.running(alert_id) and outstanding(counts) == 0:
            await _send(response, "done", {"alert_id": alert_id, "ok": all_ok(counts), "state": "done"})
            return
    last: Counts | None = None
    while True:
        timeout = service.hub.keepalive_s if queue is not None else service.hub.poll_s
        if waiting:
            pending = service.pending.get(alert_id)
            if pending is not None and pending.state == AWAITING:
                timeout = max(0.0, min(timeout, pending.confirm_by - service.clock.now() + 0.01))
        try:
            if queue is None:
                await asyncio.sleep(timeout)
                raise TimeoutError
            name, data = await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            if waiting and _window_closed(service, alert_id):
                await _send(response, "done", {"alert_id": alert_id, "ok": False, "state": NOT_CONFIRMED})
                return
            if queue is None:  # delivered elsewhere (the CLI, another server): poll the store
                counts = service.hub.counts(alert_id)
                if counts != last:
                    await _send(response, "progress", {"channel": None, "state": None, "counts": counts})
                    last = counts
                if outstanding(counts) == 0:
                    await _send(response, "done", {"alert_id": alert_id, "ok": all_ok(counts), "state": "done"})
                    return
            else:
                await response.write(b": keepalive\n\n")
            continue
        if name == _CLOSE[0]:
            return
        await _send(response, name, data)
        if name == "done":
            return


def _exists(service: Service, alert_id: str) -> bool:
    try:
        service.app.store.alert(alert_id)
    except InputError:
        return False
    return True


def _window_closed(service: Service, alert_id: str) -> bool:
    pending = service.pending.get(alert_id)
    if pending is None:
        return False
    now = service.clock.now()
    if pending.state_at(now) == NOT_CONFIRMED:
        service.pending.close_expired(alert_id, now=now)  # a no-op when already closed
        return True
    return False
