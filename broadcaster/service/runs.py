"""Start deliveries from the server, and wait for them when it stops.

Live and exercise runs are tasks on the server's own loop, through the same
:func:`~broadcaster.app.fire.run_plan` the CLI uses. A dry-run must not wait
real rate-limit time, so it runs on a worker thread, on a virtual-time loop of
its own with a store connection of its own; its channels use recording
transports, which open no connection (so no process-wide network guard is
needed, which would also block this process's live sends).

:meth:`Runs.start` returns once the alert and all its deliveries are committed
to the outbox; an error before that (a missing secret, say) is raised to the
caller, so the API answers it and nothing is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from broadcaster.app.context import App
from broadcaster.app.fire import run_plan
from broadcaster.clock import run_virtual
from broadcaster.engine.dispatcher import OutcomeObserver, ProgressHook
from broadcaster.engine.outbox import Plan
from broadcaster.engine.retry import RetryPolicy
from broadcaster.service.hub import EventHub
from broadcaster.service.metrics import Metrics
from broadcaster.states import Mode
from broadcaster.store import opened

log = logging.getLogger("broadcaster.service.runs")


class Runs:
    def __init__(self, app: App, hub: EventHub, metrics: Metrics, *, policy: RetryPolicy | None = None) -> None:
        self.app = app
        self.hub = hub
        self.metrics = metrics
        self.policy = policy
        self.active: set[asyncio.Future[Any]] = set()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="broadcaster-dry-run")

    async def start(self, plan: Plan) -> None:
        """Commit ``plan`` and deliver it in the background; return once it is committed."""
        loop = asyncio.get_running_loop()
        alert_id = plan.alert.id
        committed: asyncio.Future[None] = loop.create_future()
        observer = self.metrics.observer(plan.alert.mode)

        def on_commit(created: int, skipped: int) -> None:
            observer.committed(time.time())
            loop.call_soon_threadsafe(_resolve, committed)

        self.hub.open(alert_id)
        hook = self.hub.hook(alert_id, loop)
        work: asyncio.Future[Any]
        if plan.alert.mode == Mode.DRY_RUN:
            work = loop.run_in_executor(self._executor, self._dry_run, plan, hook, on_commit, observer)
        else:
            work = asyncio.ensure_future(run_plan(self.app, plan, progress=hook, on_commit=on_commit,
                                                  observer=observer, policy=self.policy))
        self.active.add(work)
        work.add_done_callback(partial(self._finished, alert_id, committed))
        await asyncio.wait({committed, work}, return_when=asyncio.FIRST_COMPLETED)
        if committed.done():
            return
        committed.cancel()
        await asyncio.wait({work})
        work.result()  # raises what stopped it before the commit
        raise RuntimeError(f"the delivery of {alert_id} ended before its alert was committed")

    def _dry_run(self, plan: Plan, hook: ProgressHook, on_commit: Callable[[int, int], None],
                 observer: OutcomeObserver) -> None:
        app = self.app

        async def main() -> None:
            async with opened(app.database) as store:
                own = App(config=app.config, catalogue=app.catalogue, store=store, database=app.database)
                await run_plan(own, plan, progress=hook, on_commit=on_commit, observer=observer)

        run_virtual(main())

    def _finished(self, alert_id: str, committed: asyncio.Future[None], work: asyncio.Future[Any]) -> None:
        self.active.discard(work)
        exc = None if work.cancelled() else work.exception()
        was_committed = committed.done() and not committed.cancelled()
        if exc is not None and was_committed:
            # Before the commit the caller gets the error; after it, only the log can tell.
            log.error("delivery of alert %s stopped: %s: %s", alert_id, type(exc).__name__, exc)
        task = asyncio.get_running_loop().create_task(self.hub.finished(alert_id, committed=was_committed))
        self.active.add(task)
        task.add_done_callback(self.active.discard)

    async def close(self, grace_s: float = 30.0) -> None:
        """Let running deliveries finish (up to ``grace_s``); cancel the rest (``resume`` reconciles them).

        Each delivery that ends adds the task that reports it to its subscribers (:meth:`_finished`):
        those are waited for too, so nothing reads the store after the server has closed it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self.active:
            _, late = await asyncio.wait(set(self.active), timeout=max(0.0, deadline - loop.time()))
            for work in late:
                work.cancel()
            if late:
                await asyncio.wait(late)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
