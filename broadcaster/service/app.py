"""The aiohttp application: API, console, Twilio callbacks, CAP feed and metrics in one.

``make_app(app)`` wires the service to an open :class:`~broadcaster.app.context.App`
(config, catalogue, store, all on the server's loop). Users, the audit chain,
two-person fires and receipts live in the same database as the outbox (SQLite
or PostgreSQL). Loading the config is itself audited. With ``background=True``
(``broadcaster serve``) the server is also a node: it runs the runbook scheduler
host and, when it holds every channel's secrets, a background worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from broadcaster.app.context import App
from broadcaster.app.users import Users
from broadcaster.app.worker import run_worker
from broadcaster.audit import AuditLog
from broadcaster.clock import Clock
from broadcaster.engine.node import Node, process_owner
from broadcaster.engine.retry import RetryPolicy
from broadcaster.errors import ConfigError
from broadcaster.service import api, cards, events, feed, firing, receipts, report, runbooks, verify
from broadcaster.service.edge import Network, forwarded_middleware
from broadcaster.service.failed_logins import FailedLogins
from broadcaster.service.headers import add_security_headers
from broadcaster.service.http import auth_middleware, errors_middleware, json_response
from broadcaster.service.hub import EventHub
from broadcaster.service.metrics import CONTENT_TYPE, Metrics
from broadcaster.service.openapi import document
from broadcaster.service.runs import Runs
from broadcaster.service.state import SERVICE, Limits, Service

log = logging.getLogger("broadcaster.service")

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
_PLACEHOLDER: Final = (
    "<!doctype html>\n<html lang=\"ar\" dir=\"rtl\"><meta charset=\"utf-8\"><title>broadcaster</title>\n"
    "<p>وحدة التحكم غير مثبتة · The console is not installed. The API is at /api/openapi.json.</p></html>\n"
)


def make_app(app: App, *, clock: Clock | None = None, limits: Limits | None = None,
             policy: RetryPolicy | None = None, background: bool = False,
             trusted_proxies: Sequence[Network] = ()) -> web.Application:
    """The whole HTTP service for ``app``. ``clock`` times audit rows, rate limits and two-person windows;
    forwarded headers are honoured from ``trusted_proxies`` alone (:mod:`broadcaster.service.edge`)."""
    if app.database == ":memory:":
        raise ConfigError("the service needs a database file: dry-runs write from their own connection",
                          where="database")
    clock = clock or Clock()
    node_id = process_owner()  # this server as a node: its metrics and its background worker
    metrics = Metrics(app.store.leases, node=node_id)
    hub = EventHub(app.store.alerts.state_counts)
    audit = AuditLog(app.store.db)

    async def audited(actor: str, action: str, detail: dict[str, Any]) -> None:
        await audit.append(actor, action, detail, now=clock.now())

    service = Service(
        app=app, clock=clock, users=Users(app.store.db, clock=clock), audit=audit, hub=hub, metrics=metrics,
        runs=Runs(app, hub, metrics, policy=policy), limits=limits or Limits(),
        failed_logins=FailedLogins(audited, clock), node_id=node_id,
    )
    edge = [forwarded_middleware(trusted_proxies)] if trusted_proxies else []
    web_app = web.Application(middlewares=[*edge, errors_middleware, auth_middleware])
    web_app[SERVICE] = service
    _routes(web_app)
    web_app.on_response_prepare.append(add_security_headers)
    web_app.on_startup.append(_started)
    web_app.on_shutdown.append(_shutdown)
    web_app.cleanup_ctx.append(_failed_logins)
    web_app.on_cleanup.append(_cleanup)
    if background:
        web_app.cleanup_ctx.append(_scheduler)
        web_app.cleanup_ctx.append(_worker)
    return web_app


def _routes(web_app: web.Application) -> None:
    r = web_app.router
    r.add_get("/api/openapi.json", openapi)
    r.add_get("/api/me", api.me)
    r.add_get("/api/templates", api.templates)
    r.add_get("/api/templates/{template_id}", api.template)
    r.add_post("/api/templates/{template_id}/approve", firing.approve_template)
    r.add_get("/api/gazetteer", api.gazetteer)
    r.add_get("/api/channels", api.channels)
    r.add_post("/api/preview", api.preview)
    r.add_get("/api/alerts", api.alerts)
    r.add_post("/api/alerts", firing.fire)
    r.add_get("/api/alerts/{alert_id}", api.alert)
    r.add_post("/api/alerts/{alert_id}/confirm", firing.confirm)
    r.add_get("/api/alerts/{alert_id}/events", events.handle_events)
    r.add_get("/api/alerts/{alert_id}/log", api.log)
    r.add_get("/api/alerts/{alert_id}/report", report.report)
    r.add_get("/api/alerts/{alert_id}/report.html", report.report_page)
    r.add_post("/api/alerts/{alert_id}/update", firing.update)
    r.add_post("/api/alerts/{alert_id}/cancel", firing.cancel)
    r.add_post("/api/alerts/{alert_id}/all-clear", firing.all_clear)
    r.add_post("/api/alerts/{alert_id}/preview", firing.preview_follow_up)
    r.add_get("/api/runbooks", runbooks.runbooks)
    r.add_get("/api/runbooks/runs", runbooks.runs)
    r.add_get("/api/runbooks/runs/{run_id}", runbooks.run)
    r.add_post("/api/runbooks/runs/{run_id}/stop", runbooks.stop)
    r.add_post("/api/runbooks/{runbook_id}/rehearse", runbooks.rehearse_runbook)
    r.add_post("/api/runbooks/{runbook_id}/run", runbooks.run_runbook)
    r.add_post(receipts.CALLBACK_PATH, receipts.handle_status)
    cards.register(web_app)
    r.add_get("/cap/feed.atom", feed.atom)
    r.add_get(r"/cap/{alert_id:[A-Za-z0-9_-]+}.xml", feed.cap)
    verify.register(web_app)
    r.add_get("/metrics", metrics)
    if not (STATIC_DIR / "index.html").exists():
        STATIC_DIR.mkdir(parents=True, exist_ok=True)
        (STATIC_DIR / "index.html").write_text(_PLACEHOLDER, encoding="utf-8")
    r.add_get("/", index)
    r.add_static("/static/", STATIC_DIR)


async def openapi(request: web.Request) -> web.Response:
    return json_response(document())


async def metrics(request: web.Request) -> web.Response:
    body = await request.app[SERVICE].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _started(web_app: web.Application) -> None:
    service = web_app[SERVICE]
    config = service.config
    try:
        digest = hashlib.sha256(await asyncio.to_thread(config.path.read_bytes)).hexdigest()
    except OSError:
        digest = None
    await service.record("service", "config_load", path=str(config.path), sha256=digest,
                         channels=[c.id for c in config.channels], templates=service.app.catalogue.ids(),
                         public_url=config.public_url)
    if config.public_url is None:
        log.warning("[broadcaster] public_url is not set: SMS sends carry no StatusCallback and every "
                    "Twilio callback is refused")
        log.warning("[broadcaster] public_url is not set: the CAP feed is not published (/cap/feed.atom and "
                    "/cap/{id}.xml answer 503); its links are never taken from a request's Host header")


async def _failed_logins(web_app: web.Application) -> AsyncIterator[None]:
    """Refused requests are written once a minute, per source; the last counts as the server stops."""
    failed = web_app[SERVICE].failed_logins
    task = asyncio.create_task(failed.run(), name="failed-logins")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await failed.flush(everything=True)


async def _shutdown(web_app: web.Application) -> None:
    web_app[SERVICE].hub.close_all()


async def _cleanup(web_app: web.Application) -> None:
    await web_app[SERVICE].runs.close()


async def _scheduler(web_app: web.Application) -> AsyncIterator[None]:
    """The runbook scheduler host, for the server's lifetime: scheduled steps and ``fire --at`` fire here
    (when this node leads the schedule; otherwise it stands by)."""
    from broadcaster.app.runbook import host

    service = web_app[SERVICE]
    scheduler = host(service.app, report=lambda line: log.info("%s", line))
    await scheduler.start()
    serving = asyncio.create_task(scheduler.serve(), name="runbook-scheduler")
    serving.add_done_callback(_report_stop)
    service.scheduler = scheduler  # POST /api/runbooks/{id}/run starts runs on it
    try:
        yield
    finally:
        service.scheduler = None
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await serving
        await scheduler.shutdown()


async def _worker(web_app: web.Application) -> AsyncIterator[None]:
    """Serve is a node too: in the background it delivers queued alerts and what dead nodes left behind.

    It needs every channel's secrets; without them the server still runs (dry-runs,
    the console, the API) and says that this node delivers nothing in the background.
    """
    service = web_app[SERVICE]
    missing = [f"{c.id}: ${env}" for c in service.config.channels for _key, env in c.missing_env()]
    if missing:
        log.warning("no background worker on this node (missing %s): queued alerts wait for another node",
                    ", ".join(missing))
        yield
        return
    node = Node(service.app.store, "serve", owner=service.node_id)
    task = asyncio.create_task(run_worker(service.app, node), name="background-worker")
    task.add_done_callback(_report_stop)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _report_stop(task: asyncio.Task[object]) -> None:
    """A background task (scheduler, worker) must not die silently while the API keeps answering."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: it does nothing more until the server restarts", task.get_name(),
                  exc_info=task.exception())
