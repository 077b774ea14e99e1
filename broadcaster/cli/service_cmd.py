"""``broadcaster serve``, ``broadcaster users add`` and ``broadcaster audit verify``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

from aiohttp import web

from broadcaster.app import DEFAULT_CONFIG, App, database_of, load_app
from broadcaster.audit import AuditLog
from broadcaster.channels.registry import KINDS
from broadcaster.cli.output import EXIT_FAILED, EXIT_OK, console, problem
from broadcaster.config import load_config
from broadcaster.engine.node import Node
from broadcaster.engine.runner import work
from broadcaster.errors import ConfigError
from broadcaster.service.auth import ROLES, Users
from broadcaster.service.receipts import callback_url
from broadcaster.service.state import SERVICE
from broadcaster.store import open_store
from broadcaster.store.sql import Database

log = logging.getLogger("broadcaster.serve")
# Where serve keeps the runbook scheduler host (typed loosely: importing it loads APScheduler).
SCHEDULER: Final = web.AppKey("runbook_scheduler", object)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="HTTP API, web console, Twilio receipts, CAP feed, metrics, scheduler")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    serve.set_defaults(handler=cmd_serve)

    users = commands.add_parser("users", help="API users and their tokens")
    users_sub = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = users_sub.add_parser("add", help="create a user; prints the new API token once, as the last line")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES,
                     help="viewer | operator (dry-run, exercise) | officer (live) | approver (approves, second-signs)")
    add.set_defaults(handler=cmd_users_add)
    listing = users_sub.add_parser("list", help="list users and roles (never tokens)")
    listing.set_defaults(handler=cmd_users_list)

    audit = commands.add_parser("audit", help="the hash-chained audit log")
    audit_sub = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = audit_sub.add_parser("verify", help="check the chain; name the first edited, deleted or inserted row")
    verify.set_defaults(handler=cmd_audit_verify)


@contextlib.contextmanager
def _open(args: argparse.Namespace) -> Iterator[Database]:
    """The database alone: users and the audit log must be reachable even when a template is broken."""
    database = args.db or os.environ.get("BROADCASTER_DB")
    if not database:
        path = Path(args.config or os.environ.get("BROADCASTER_CONFIG") or DEFAULT_CONFIG)
        database = load_config(path, KINDS).database
    store = open_store(database)
    try:
        db = database_of(store)
        if db is None:
            raise ConfigError("users and the audit log need a SQL store (a SQLite file or a PostgreSQL URL)",
                              where="database")
        yield db
    finally:
        store.close()


def cmd_users_add(args: argparse.Namespace) -> int:
    with _open(args) as db:
        token = Users(db).add(args.name, args.role)
        AuditLog(db).append(f"cli:{getpass.getuser()}", "user_add", {"name": args.name, "role": args.role},
                            now=time.time())
    console().print(f"user {args.name} ({args.role}) created. Store this token now; it is not shown again:")
    print(token.reveal(), flush=True)  # the last line: only the token, for scripts
    return EXIT_OK


def cmd_users_list(args: argparse.Namespace) -> int:
    with _open(args) as db:
        for user in Users(db).all():
            console().print(f"{user.name}\t{user.role}", markup=False)
    return EXIT_OK


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with _open(args) as db:
        verdict = AuditLog(db).verify()
    if not verdict.ok:
        problem(f"audit log TAMPERED at row {verdict.bad_seq}: {verdict.problem}", style="bold red")
        return EXIT_FAILED
    console().print(f"audit log OK: {verdict.rows} row(s); head row {verdict.head_seq} sha256 {verdict.head_hash}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from broadcaster.service.app import make_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = load_app(args.config, args.db)
    web_app = make_app(app)
    start_runbook_scheduler(app, web_app)
    start_worker(app, web_app)
    console().print(f"serving on http://{args.host}:{args.port} (API at /api/, console at /)")
    try:
        web.run_app(web_app, host=args.host, port=args.port, print=None)
    finally:
        app.close()
    return EXIT_OK


def start_runbook_scheduler(app: App, web_app: web.Application) -> None:
    """Run the runbook scheduler host for the server's lifetime: scheduled steps and ``fire --at`` jobs fire here.

    The host shares the server's loop and database; jobs stay in the job store
    when the server stops (``broadcaster schedule run`` or the next ``serve``
    picks them up).
    """

    async def scheduler_context(_: web.Application) -> AsyncIterator[None]:
        from broadcaster.runbooks.scheduler import Host

        host = Host(app, report=lambda line: log.info("%s", line))
        await host.start()
        serving = asyncio.create_task(host.serve(), name="runbook-scheduler")
        serving.add_done_callback(_report_stop)
        web_app[SCHEDULER] = host
        web_app[SERVICE].scheduler = host  # POST /api/runbooks/{id}/run schedules on it
        try:
            yield
        finally:
            web_app[SERVICE].scheduler = None
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await serving
            await host.shutdown()

    web_app.cleanup_ctx.append(scheduler_context)


def start_worker(app: App, web_app: web.Application) -> None:
    """Serve is a node too: in the background it delivers queued alerts and what dead nodes left behind.

    It needs every channel's secrets; without them the server still runs (dry-runs,
    the console, the API) and says that this node delivers nothing in the background.
    """

    async def worker_context(_: web.Application) -> AsyncIterator[None]:
        missing = [f"{c.id}: ${env}" for c in app.config.channels for _key, env in c.missing_env()]
        if missing:
            log.warning("no background worker on this node (missing %s): queued alerts wait for another node",
                        ", ".join(missing))
            yield
            return
        service = web_app[SERVICE]
        node = Node(app.store, "serve", owner=service.node_id)
        task = asyncio.create_task(work(app.store, app.config.channels, node,
                                        status_callback=callback_url(app.config)), name="background-worker")
        task.add_done_callback(_report_stop)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    web_app.cleanup_ctx.append(worker_context)


def _report_stop(task: asyncio.Task[object]) -> None:
    """A background task (scheduler, worker) must not die silently while the API keeps answering."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: it does nothing more until the server restarts", task.get_name(),
                  exc_info=task.exception())
