"""``broadcaster worker``, ``broadcaster nodes`` and ``broadcaster db upgrade|status``: several nodes, one database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from rich.table import Table

from broadcaster.app import DEFAULT_CONFIG, load_app
from broadcaster.channels.registry import KINDS
from broadcaster.cli.output import EXIT_OK, console, print_json
from broadcaster.config import load_config
from broadcaster.engine.dispatcher import Tuning
from broadcaster.engine.node import Node
from broadcaster.engine.runner import SERVED_MODES, work
from broadcaster.errors import ConfigError
from broadcaster.runbooks.leader import scheduler_leader
from broadcaster.service.receipts import callback_url
from broadcaster.store import migrate, open_store, upgrade_database
from broadcaster.store.sql import StoreUnavailable
from broadcaster.timefmt import iso_seconds

log = logging.getLogger("broadcaster.worker")
RETRY_S = 2.0  # a worker that lost the database starts again after this
RECENT_S = 60.0  # `nodes` lists nodes that beat within this long, and every node that never stopped


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "worker", help="deliver live and exercise alerts committed by any node, until stopped (SIGTERM, Ctrl-C)")
    worker.add_argument("--channels", default="all", metavar="ID,ID",
                        help="serve only these channels (default: every channel in channels.toml)")
    worker.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                        help="idle re-check interval; on PostgreSQL, NOTIFY wakes the worker sooner (default 1)")
    worker.set_defaults(handler=cmd_worker)

    nodes = commands.add_parser("nodes", help="live nodes, the leases they hold, and each channel's queue")
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(handler=cmd_nodes)

    db = commands.add_parser("db", help="the database schema")
    db_sub = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="apply the schema migrations this version needs (both backends)")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    status = db_sub.add_parser("status", help="the schema version of the database and of this program")
    status.set_defaults(handler=cmd_db_status)


def _database(args: argparse.Namespace) -> str:
    database: str | None = args.db or os.environ.get("BROADCASTER_DB")
    if database:
        return database
    return load_config(Path(args.config or os.environ.get("BROADCASTER_CONFIG") or DEFAULT_CONFIG), KINDS).database


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    before, applied = upgrade_database(_database(args))
    out = console()
    for m in applied:
        out.print(f"applied {m.version:04d} {m.name}")
    after = applied[-1].version if applied else before
    out.print(f"schema at version {after} ({'up to date' if not applied else f'was {before}'})")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    store = open_store(_database(args), require_schema=False)
    try:
        db = store.db  # type: ignore[attr-defined]
        have, want = migrate.current(db), migrate.latest(db.dialect)
    finally:
        store.close()
    state = "up to date" if have == want else ("run `broadcaster db upgrade`" if have < want else "newer than program")
    console().print(f"{db.dialect}: schema {have}, this broadcaster needs {want}: {state}")
    return EXIT_OK if have == want else 1


def cmd_nodes(args: argparse.Namespace) -> int:
    store = open_store(_database(args))
    try:
        now = time.time()
        nodes = store.nodes(now - RECENT_S)
        depths = store.queue_depths()
        leader = scheduler_leader(store)
    finally:
        store.close()
    if args.json:
        print_json({
            "nodes": [{"id": n.id, "host": n.host, "pid": n.pid, "role": n.role,
                       "started_at": iso_seconds(n.started_at),
                       "heartbeat_age_s": round(now - n.heartbeat_at, 1),
                       "stopped_at": iso_seconds(n.stopped_at) if n.stopped_at else None,
                       "leases": n.leases, "lease_until": iso_seconds(n.lease_until) if n.lease_until else None,
                       "scheduler_leader": n.id == leader}
                      for n in nodes],
            "queues": depths,
        })
        return EXIT_OK
    out = console()
    table = Table(title="nodes", title_justify="left")
    for column in ("node", "role", "started", "last beat", "state", "leases", "earliest lease ends"):
        table.add_column(column)
    for n in nodes:
        age = now - n.heartbeat_at
        state = "stopped" if n.stopped_at else ("alive" if age < 15 else f"silent {age:.0f} s")
        role = f"{n.role} (leader)" if n.id == leader else n.role
        table.add_row(n.id, role, iso_seconds(n.started_at), f"{age:.1f} s ago", state, str(n.leases),
                      iso_seconds(n.lease_until) if n.lease_until else "-")
    out.print(table)
    queues = Table(title="queues (not yet finished)", title_justify="left")
    for column in ("channel", "pending", "sending", "unknown"):
        queues.add_column(column)
    for channel_id, counts in sorted(depths.items()):
        queues.add_row(channel_id, *(str(counts.get(s, 0)) for s in ("pending", "sending", "unknown")))
    out.print(queues if depths else "queues: nothing waiting")
    if leader is not None:  # PostgreSQL: one node runs the schedule
        out.print(f"scheduler leader: {leader}")
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    configs = list(app.config.channels)
    if args.channels != "all":
        wanted = [c.strip() for c in args.channels.split(",") if c.strip()]
        unknown = sorted(set(wanted) - {c.id for c in configs})
        if unknown:
            raise ConfigError(f"--channels: no such channel(s) {', '.join(unknown)}", where=str(app.config.path))
        configs = [c for c in configs if c.id in wanted]
    if args.poll <= 0:
        raise ConfigError("--poll must be positive", where="--poll")
    store = app.store
    tuning = Tuning(idle_poll_s=args.poll)
    nodes: list[Node] = []
    console().print(f"worker serving {', '.join(c.id for c in configs)} "
                    f"({' and '.join(SERVED_MODES)} alerts) on {getattr(store, 'where', app.database)}")

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                # A new node id for each start: a node that lost the database is taken for dead by the
                # others after DEAD_AFTER_S, and its leases are recovered and reconciled, never resent blindly.
                nodes.append(Node(store, "worker"))
                console().print(f"node {nodes[-1].id} started")
                try:
                    await work(store, configs, nodes[-1], tuning=tuning, status_callback=callback_url(app.config))
                except* StoreUnavailable as group:
                    log.error("the database is unreachable (%s); starting again in %.0f s", group.exceptions[0],
                              RETRY_S)
                    console().print(f"database unreachable: {group.exceptions[0]}; retrying in {RETRY_S:.0f} s")
                await asyncio.sleep(RETRY_S)

    try:
        asyncio.run(main())
    finally:
        app.close()
    recovered = sum(n.recovered for n in nodes)
    console().print(f"worker stopped; it recovered {recovered} deliveries of dead nodes")
    return EXIT_OK
