"""``broadcaster serve``, ``broadcaster users add|list`` and ``broadcaster audit verify``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import time

from broadcaster.cli.numbers import whole
from broadcaster.cli.output import EXIT_FAILED, EXIT_OK, console, problem

ROLES = ("viewer", "operator", "officer", "approver")  # as broadcaster.service.auth.ROLES (kept light for --help)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="HTTP API, web console, Twilio receipts, CAP feed, metrics, scheduler")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=whole(1, 65535), default=8080, help="port to listen on (default 8080)")
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


async def cmd_users_add(args: argparse.Namespace) -> int:
    # The database alone: users and the audit log must be reachable even when a template is broken.
    from broadcaster.app.context import database_of
    from broadcaster.app.users import Users
    from broadcaster.audit import AuditLog
    from broadcaster.store import opened

    async with opened(database_of(args.config, args.db)) as store:
        token = await Users(store.db).add(args.name, args.role)
        await AuditLog(store.db).append(f"cli:{getpass.getuser()}", "user_add", {"name": args.name,
                                                                                 "role": args.role}, now=time.time())
    console().print(f"user {args.name} ({args.role}) created. Store this token now; it is not shown again:")
    print(token.reveal(), flush=True)  # the last line: only the token, for scripts
    return EXIT_OK


async def cmd_users_list(args: argparse.Namespace) -> int:
    from broadcaster.app.context import database_of
    from broadcaster.app.users import Users
    from broadcaster.store import opened

    async with opened(database_of(args.config, args.db)) as store:
        for user in await Users(store.db).all():
            console().print(f"{user.name}\t{user.role}", markup=False)
    return EXIT_OK


async def cmd_audit_verify(args: argparse.Namespace) -> int:
    from broadcaster.app.context import database_of
    from broadcaster.audit import AuditLog
    from broadcaster.store import opened

    async with opened(database_of(args.config, args.db)) as store:
        verdict = await AuditLog(store.db).verify()
    if not verdict.ok:
        problem(f"audit log TAMPERED at row {verdict.bad_seq}: {verdict.problem}", style="bold red")
        return EXIT_FAILED
    console().print(f"audit log OK: {verdict.rows} row(s); head row {verdict.head_seq} sha256 {verdict.head_hash}")
    return EXIT_OK


async def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from broadcaster.app.context import open_app
    from broadcaster.app.worker import settle_heap_soon
    from broadcaster.service.app import make_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_app(args.config, args.db, name="broadcaster serve") as app:
        runner = web.AppRunner(make_app(app, background=True), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, args.host, args.port).start()
            settle_heap_soon()
            console().print(f"serving on http://{args.host}:{args.port} (API at /api/, console at /)")
            await stop.wait()
        finally:
            await runner.cleanup()
    return EXIT_OK
