"""``broadcaster log`` and ``broadcaster resume``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from broadcaster.cli.output import EXIT_FAILED, EXIT_OK, console, print_json
from broadcaster.cli.views import show_attempts, show_summary

if TYPE_CHECKING:
    from broadcaster.app.resume import Resumed


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    log = commands.add_parser("log", help="the delivery log of an alert (or of every alert of a run): every attempt")
    log.add_argument("alert_id", help="an alert id, or a runbook run / rehearsal / schedule id (run-…, sch-…)")
    log.add_argument("--json", action="store_true", help="one JSON line per attempt")
    log.add_argument("--all", action="store_true", help="show every attempt (default: the first 200)")
    log.set_defaults(handler=cmd_log)
    resume = commands.add_parser("resume", help="finish or reconcile deliveries left by a crash")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(handler=cmd_resume)


async def cmd_log(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app

    async with open_app(args.config, args.db) as app:
        if args.alert_id.startswith(("run-", "sch-")):
            # A runbook run, rehearsal or scheduled fire: every alert of it, step by step.
            from broadcaster.cli.views import show_run_log

            return await show_run_log(app, args.alert_id, as_json=args.json, limit=None if args.all else 200)
        alert = await app.store.alerts.get(args.alert_id)
        if args.json:
            async for attempt in app.store.alerts.attempts(alert.id):
                print_json({**attempt.as_json(), "mode": str(alert.mode)})  # "sent" as stored, beside its mode
            return EXIT_OK
        await show_summary(app, alert.id)
        await show_attempts(app, alert.id, limit=None if args.all else 200)
    return EXIT_OK






async def cmd_resume(args: argparse.Namespace) -> int:
    """Reclaim deliveries of dead processes, reconcile the unknown, finish the rest.

    Live and exercise alerts are delivered on this loop; dry-run alerts on a
    virtual-time loop of their own, inside the network guard, as every dry-run.
    """
    import asyncio

    from broadcaster.app.context import open_app
    from broadcaster.app.resume import resume
    from broadcaster.states import DeliveryState, Mode

    async with open_app(args.config, args.db) as app:
        real = await resume(app, modes=(Mode.LIVE, Mode.EXERCISE))
    rehearsed = await asyncio.to_thread(_resume_dry_runs, args)
    alerts = {**real.alerts, **rehearsed.alerts}
    recovered = real.recovered + rehearsed.recovered
    failed = sum(n for per in alerts.values() for c in per.values() for s, n in c.items() if s != DeliveryState.SENT)
    if args.json:
        print_json({"recovered": recovered, "alerts": [{"alert_id": a, "states": c} for a, c in alerts.items()]})
    else:
        console().print(f"recovered {recovered} delivery(ies) left mid-attempt; {len(alerts)} alert(s) finished")
        async with open_app(args.config, args.db) as app:
            for alert_id in alerts:
                await show_summary(app, alert_id)
    return EXIT_OK if failed == 0 else EXIT_FAILED


def _resume_dry_runs(args: argparse.Namespace) -> Resumed:
    from broadcaster.app.context import database_of, open_app
    from broadcaster.app.resume import resume
    from broadcaster.clock import run_virtual
    from broadcaster.netguard import no_network
    from broadcaster.states import Mode
    from broadcaster.store import address_of

    async def main() -> Resumed:
        async with open_app(args.config, args.db) as app:
            return await resume(app, modes=(Mode.DRY_RUN,))

    database = address_of(database_of(args.config, args.db))
    with no_network(allow=[database] if database else []):
        return run_virtual(main())
