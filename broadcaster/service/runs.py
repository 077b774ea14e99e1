"""Start deliveries from the server, and wait for them when it stops.

Live and exercise runs are asyncio tasks on the server's own loop, through the
same :func:`~broadcaster.engine.runner.deliver` the CLI uses. A dry-run must open
no connection and must not wait real rate-limit time, so it runs on a worker
thread with its own store connection, on a virtual-time loop, with channels on
recording transports that never touch the network. (The process-wide ``no_network()`` guard
is not used here: it would also block the live sends of this same process.)

:meth:`Runs.start` returns once the alert and all its deliveries are committed to
the outbox; an error before that (a missing secret, say) is raised to the caller,
so the API answers it and nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from broadcaster.app import App
from broadcaster.clock import run_virtual
from broadcaster.engine.dispatcher import ProgressHook
from broadcaster.engine.outbox import Plan
from broadcaster.engine.retry import RetryPolicy
from broadcaster.engine.runner import deliver
from broadcaster.service.events import EventHub
from broadcaster.service.metrics import AlertObserver, Metrics
from broadcaster.store import open_store

log = logging.getLogger("broadcaster.service.runs")


class Runs:
    def __init__(self, app: App, hub: EventHub, metrics: Metrics, *, status_callback: str | None,
                 policy: RetryPolicy | None = None) -> None:
        self.app = app
        self.hub = hub
        self.metrics = metrics
        self.status_callback = status_callback
        self.policy = policy
        self.active: set[asyncio.Future[Any]] = set()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="broadcaster-dry-run")

    async def start(self, plan: Plan, mode: str) -> None:
        """Commit ``plan`` and deliver it in the background; return once it is committed."""
        loop = asyncio.get_running_loop()
        alert_id = plan.alert.id
        committed: asyncio.Future[None] = loop.create_future()
        observer = self.metrics.observer(mode)

        def on_commit(created: int, skipped: int) -> None:
            observer.committed(time.time())
            loop.call_soon_threadsafe(_resolve, committed)

        self.hub.open(alert_id)
        hook = self.hub.hook(alert_id, loop)
        work: asyncio.Future[Any]
        if mode == "dry-run":
            work = loop.run_in_executor(self._executor, self._dry_run, plan, hook, on_commit, observer)
        else:
            work = asyncio.ensure_future(deliver(
                self.app.store, plan.channels, mode, plan=plan, progress=hook, on_commit=on_commit,
                observer=observer, status_callback=self.status_callback, policy=self.policy,
            ))
        self.active.add(work)
        work.add_done_callback(partial(self._finished, alert_id, committed))
        await asyncio.wait({committed, work}, return_when=asyncio.FIRST_COMPLETED)
        if committed.done():
            return
        committed.cancel()
        await asyncio.wait({work})
        work.result()  # raises what stopped it before the commit
        raise RuntimeError(f"the delivery of {alert_id} ended before its alert was committed")

    def _dry_run(self, plan: Plan, hook: ProgressHook, on_commit: Any, observer: AlertObserver) -> None:
        store = open_store(self.app.database)
        try:
            run_virtual(deliver(store, plan.channels, "dry-run", plan=plan, progress=hook, on_commit=on_commit,
                                observer=observer))
        finally:
            store.close()

    def _finished(self, alert_id: str, committed: asyncio.Future[None], work: asyncio.Future[Any]) -> None:
        self.active.discard(work)
        exc = None if work.cancelled() else work.exception()
        was_committed = committed.done() and not committed.cancelled()
        if exc is not None and was_committed:
            # Before the commit the caller gets the error; after it, only the log can tell.
            log.error("delivery of alert %s stopped: %s: %s", alert_id, type(exc).__name__, exc)
        self.hub.finished(alert_id, committed=was_committed)

    async def close(self, grace_s: float = 30.0) -> None:
        """Let running deliveries finish (up to ``grace_s``); cancel the rest (``resume`` reconciles them)."""
        if self.active:
            _, late = await asyncio.wait(set(self.active), timeout=grace_s)
            for work in late:
                work.cancel()
            if late:
                await asyncio.wait(late)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
