"""``broadcaster worker`` and ``broadcaster nodes``: several nodes, one database (``db``: :mod:`.db_cmd`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from broadcaster.cli.numbers import seconds
from broadcaster.cli.output import EXIT_OK, console, print_json
from broadcaster.states import DeliveryState

log = logging.getLogger("broadcaster.worker")
RETRY_S = 2.0  # a worker that lost the database starts again after this
RECENT_S = 60.0  # `nodes` lists nodes that beat within this long, and every node that still holds leases


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "worker", help="deliver live and exercise alerts committed by any node, until stopped (SIGTERM, Ctrl-C)")
    worker.add_argument("--channels", default="all", metavar="ID,ID",
                        help="serve only these channels (default: every channel in channels.toml)")
    worker.add_argument("--poll", type=seconds(0.01, 60), default=1.0, metavar="SECONDS",
                        help="idle re-check interval; on PostgreSQL, NOTIFY wakes the worker sooner (default 1)")
    worker.add_argument("--heartbeat", type=seconds(0.1, 60), default=2.0, metavar="SECONDS",
                        help="how often the node beats and renews its leases (default 2)")
    worker.add_argument("--dead-after", type=seconds(1, 3600), default=15.0, metavar="SECONDS",
                        help="a node silent this long is dead and its deliveries are reconciled; use one value on "
                             "every node of a database (default 15)")
    worker.set_defaults(handler=cmd_worker)

    nodes = commands.add_parser("nodes", help="live nodes, the leases they hold, and each channel's queue")
    nodes.add_argument("--json", action="store_true")
    nodes.set_defaults(handler=cmd_nodes)


async def cmd_nodes(args: argparse.Namespace) -> int:
    from rich.table import Table

    from broadcaster.app.context import database_of
    from broadcaster.engine.node import DEAD_AFTER_S
    from broadcaster.store import opened
    from broadcaster.store.leadership import SCHEDULER_LEAD
    from broadcaster.timefmt import iso_seconds

    async with opened(database_of(args.config, args.db)) as store:
        now = await store.nodes.now()
        nodes = await store.nodes.recent(RECENT_S)
        depths = await store.leases.queue_depths()
        leader = await store.leadership.holder(SCHEDULER_LEAD)
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
        state = "stopped" if n.stopped_at else ("alive" if age < DEAD_AFTER_S else f"silent {age:.0f} s")
        role = f"{n.role} (leader)" if n.id == leader else n.role
        table.add_row(n.id, role, iso_seconds(n.started_at), f"{age:.1f} s ago", state, str(n.leases),
                      iso_seconds(n.lease_until) if n.lease_until else "-")
    out.print(table)
    queues = Table(title="queues (not yet finished)", title_justify="left")
    waiting = (DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.UNKNOWN)
    for column in ("channel", *waiting):
        queues.add_column(column)
    for channel_id, counts in sorted(depths.items()):
        queues.add_row(channel_id, *(str(counts.get(s, 0)) for s in waiting))
    out.print(queues if depths else "queues: nothing waiting")
    if leader is not None:
        out.print(f"scheduler leader: {leader}")
    return EXIT_OK


async def cmd_worker(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.worker import run_worker, served_channels, settle_heap_soon
    from broadcaster.cli.sd_notify import READY, STOPPING, notify
    from broadcaster.engine.node import Node
    from broadcaster.errors import ConfigError, StoreUnavailable

    if args.poll <= 0:
        raise ConfigError("--poll must be positive", where="--poll")
    if not 0 < args.heartbeat < args.dead_after * 2 / 3:
        raise ConfigError("--heartbeat must be positive and well under --dead-after", where="--heartbeat")
    options = {"heartbeat_s": args.heartbeat, "dead_after_s": args.dead_after, "margin_s": args.dead_after / 3}
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    nodes: list[Node] = []
    settle_heap_soon()
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            # A new node id for each start: a node that lost the database is taken for dead by the others
            # after --dead-after, and its leases are recovered and reconciled, never resent blindly.
            try:
                async with open_app(args.config, args.db, name="broadcaster worker") as app:
                    configs = served_channels(app, args.channels)
                    console().print(f"worker serving {', '.join(c.id for c in configs)} (live and exercise alerts) "
                                    f"on {app.store.where}")
                    nodes.append(Node(app.store, "worker", **options))
                    console().print(f"node {nodes[-1].id} started")
                    notify(READY)  # systemd Type=notify: the config loaded and the database answered
                    await run_worker(app, nodes[-1], selection=args.channels, poll_s=args.poll)
            except* StoreUnavailable as group:
                log.error("the database is unreachable (%s); starting again in %.0f s", group.exceptions[0], RETRY_S)
                console().print(f"database unreachable: {group.exceptions[0]}; retrying in {RETRY_S:.0f} s")
            await asyncio.sleep(RETRY_S)
    notify(STOPPING)
    console().print(f"worker stopped; it recovered {sum(n.recovered for n in nodes)} deliveries of dead nodes")
    return EXIT_OK
