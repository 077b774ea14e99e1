"""Server-sent progress of an alert: ``GET /api/alerts/{id}/events``.

A subscriber first gets the current counts (``channel`` and ``state`` null), so
one that connects late, or to an alert this process is not delivering, still
starts from the truth; ``done`` follows at once when nothing is left to do.
Counts are the engine's delivery states (sending progress); Twilio receipts
(``delivered``/``undelivered``) show in ``GET /api/alerts/{id}``. An alert
awaiting its second officer streams ``state: awaiting_confirmation`` and waits
for the confirmation (or ``done`` with ``state: not_confirmed``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from aiohttp import web

from broadcaster.service.http import ApiError, current_user
from broadcaster.service.hub import CLOSE, Counts, Event, all_ok, outstanding
from broadcaster.service.state import SERVICE, Service
from broadcaster.store.pending import AWAITING, NOT_CONFIRMED


async def _send(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    await response.write(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")


async def handle_events(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    alert_id = request.match_info["alert_id"]
    pending = await service.app.store.pending.get(alert_id)
    exists = await _exists(service, alert_id)
    if not exists and pending is None and not service.hub.running(alert_id):
        raise ApiError(404, "not_found", f"no alert with id {alert_id!r}")
    user = current_user(request).name
    if service.streams.get(user, 0) >= service.limits.streams_per_user:
        raise ApiError(429, "too_many_streams", f"{user} already has {service.limits.streams_per_user} event streams "
                       "open; close one (another console tab) first", headers={"Retry-After": "5"})
    service.streams[user] = service.streams.get(user, 0) + 1
    try:
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
    finally:
        left = service.streams.pop(user, 1) - 1
        if left:
            service.streams[user] = left
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def _stream(service: Service, response: web.StreamResponse, alert_id: str,
                  queue: asyncio.Queue[Event] | None) -> None:
    waiting = queue is not None and not await _exists(service, alert_id) and not service.hub.running(alert_id)
    pending_fires = service.app.store.pending
    if waiting:
        pending = await pending_fires.get(alert_id)
        assert pending is not None
        state = pending.state_at(service.clock.now())
        await _send(response, "progress", {"channel": None, "state": state, "counts": {}})
        if state != AWAITING:
            await _send(response, "done", {"alert_id": alert_id, "ok": False, "state": state})
            return
    else:
        counts = await service.hub.counts(alert_id)
        await _send(response, "progress", {"channel": None, "state": None, "counts": counts})
        if not service.hub.running(alert_id) and outstanding(counts) == 0:
            await _send(response, "done", {"alert_id": alert_id, "ok": all_ok(counts), "state": "done"})
            return
    last: Counts | None = None
    while True:
        timeout = service.hub.keepalive_s if queue is not None else service.hub.poll_s
        if waiting:
            pending = await pending_fires.get(alert_id)
            if pending is not None and pending.state == AWAITING:
                timeout = max(0.0, min(timeout, pending.confirm_by - service.clock.now() + 0.01))
        try:
            if queue is None:
                await asyncio.sleep(timeout)
                raise TimeoutError
            name, data = await asyncio.wait_for(queue.get(), timeout)
        except TimeoutError:
            if waiting and await _window_closed(service, alert_id):
                await _send(response, "done", {"alert_id": alert_id, "ok": False, "state": NOT_CONFIRMED})
                return
            if queue is None:  # delivered elsewhere (the CLI, another server): poll the store
                counts = await service.hub.counts(alert_id)
                if counts != last:
                    await _send(response, "progress", {"channel": None, "state": None, "counts": counts})
                    last = counts
                if outstanding(counts) == 0:
                    await _send(response, "done", {"alert_id": alert_id, "ok": all_ok(counts), "state": "done"})
                    return
            else:
                await response.write(b": keepalive\n\n")
            continue
        if name == CLOSE[0]:
            return
        await _send(response, name, data)
        if name == "done":
            return


async def _exists(service: Service, alert_id: str) -> bool:
    return await service.app.store.alerts.find(alert_id) is not None


async def _window_closed(service: Service, alert_id: str) -> bool:
    pending = await service.app.store.pending.get(alert_id)
    if pending is None:
        return False
    now = service.clock.now()
    if pending.state_at(now) == NOT_CONFIRMED:
        await service.app.store.pending.close_expired(alert_id, now=now)  # a no-op when already closed
        return True
    return False
