"""``broadcaster serve`` and ``broadcaster audit verify|head`` (``users``: :mod:`broadcaster.cli.users_cmd`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from broadcaster.cli.numbers import whole
from broadcaster.cli.output import EXIT_FAILED, EXIT_OK, console, problem


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="HTTP API, web console, Twilio receipts, CAP feed, metrics, scheduler")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=whole(1, 65535), default=8080, help="port to listen on (default 8080)")
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS (TLS 1.2+) with this PEM certificate chain")
    serve.add_argument("--tls-key", metavar="FILE", help="the certificate's PEM private key (unencrypted)")
    serve.add_argument("--insecure-http", action="store_true",
                       help="allow plain HTTP on an address other than loopback (tokens cross the network in clear)")
    serve.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR|CIDR",
                       help="honour X-Forwarded-For/-Proto from this reverse proxy only (repeatable)")
    serve.set_defaults(handler=cmd_serve)

    audit = commands.add_parser("audit", help="the hash-chained audit log")
    audit_sub = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = audit_sub.add_parser("verify", help="check the chain and the alerts anchored to it; name the first "
                                  "edited, deleted or inserted row, alert or delivery")
    verify.add_argument("--expect", metavar="HASH:COUNT",
                        help="a head `audit head` printed earlier: the log must still hold it (a cut tail fails)")
    verify.set_defaults(handler=cmd_audit_verify)
    head = audit_sub.add_parser("head", help="print the head as HASH:COUNT, to keep outside this machine")
    head.set_defaults(handler=cmd_audit_head)


async def cmd_audit_verify(args: argparse.Namespace) -> int:
    from broadcaster.anchors import Anchors
    from broadcaster.app.context import database_of
    from broadcaster.audit import AuditLog, Head
    from broadcaster.store import opened

    expect = Head.parse(args.expect) if args.expect is not None else None
    anchors = Anchors()
    async with opened(database_of(args.config, args.db)) as store:
        verdict = await AuditLog(store.db).verify(expect=expect, observe=anchors.observe)
        checked = await anchors.check(store) if verdict.ok else None
    if not verdict.ok:
        problem(f"audit log TAMPERED at row {verdict.bad_seq}: {verdict.problem}", style="bold red")
        return EXIT_FAILED
    chain = f"{verdict.rows} row(s); head row {verdict.head_seq} sha256 {verdict.head_hash}"
    assert checked is not None
    if not checked.ok:
        console().print(f"audit chain intact: {chain}")
        where = f"alert {checked.alert_id}" + (f", delivery {checked.delivery_id}" if checked.delivery_id else "")
        problem(f"audit log TAMPERED at {where}: {checked.problem}", style="bold red")
        return EXIT_FAILED
    console().print(f"audit log OK: {chain}")
    if expect is not None:
        console().print(f"the recorded head {expect} is still in the log")
    notes = [f"{checked.sealed} sealed"]
    if checked.delivering:
        notes.append(f"{checked.delivering} still delivering or held")
    if checked.unsealed:
        notes.append(f"{checked.unsealed} finished and waiting to be sealed (by a worker or `broadcaster resume`)")
    if checked.before_anchoring:
        notes.append(f"{checked.before_anchoring} committed before anchoring began, not checked")
    console().print(f"alerts OK: {checked.alerts} alert(s) match their anchors; {', '.join(notes)}")
    return EXIT_OK


async def cmd_audit_head(args: argparse.Namespace) -> int:
    from broadcaster.app.context import database_of
    from broadcaster.audit import AuditLog
    from broadcaster.store import opened

    async with opened(database_of(args.config, args.db)) as store:
        head = await AuditLog(store.db).head()
    print(head, flush=True)  # only HASH:COUNT, for scripts and a note kept elsewhere
    return EXIT_OK


async def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from broadcaster.app.context import open_app
    from broadcaster.app.worker import settle_heap_soon
    from broadcaster.cli.sd_notify import READY, STOPPING, notify
    from broadcaster.clock import in_thread
    from broadcaster.errors import ConfigError
    from broadcaster.service.app import make_app
    from broadcaster.service.edge import check_exposure, server_tls, trusted_networks

    tls = await in_thread(server_tls, args.tls_cert, args.tls_key)
    check_exposure(args.host, tls=tls is not None, insecure_http=args.insecure_http)
    proxies = trusted_networks(args.trusted_proxy)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_app(args.config, args.db, name="broadcaster serve") as app:
        web_app = make_app(app, background=True, trusted_proxies=proxies)
        runner = web.AppRunner(web_app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, args.host, args.port, ssl_context=tls).start()
            except OSError as exc:
                why = os.strerror(exc.errno) if exc.errno else str(exc)
                raise ConfigError(f"cannot listen on {args.host}:{args.port}: {why} (is another broadcaster serve "
                                  "running there?); choose another --port or --host") from None
            settle_heap_soon()
            scheme = "https" if tls is not None else "http"
            console().print(f"serving on {scheme}://{args.host}:{args.port} (API at /api/, console at /)")
            notify(READY)  # systemd Type=notify: started once the port answers
            await stop.wait()
            notify(STOPPING)
        finally:
            await runner.cleanup()
    return EXIT_OK
