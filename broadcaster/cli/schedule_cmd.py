"""``broadcaster schedule list|cancel|run`` and ``broadcaster fire ... --at / --every --until``.

A scheduled fire is a one-step run (id ``sch-…``) whose occurrences are rows of
the schedule in the database (SQLite or PostgreSQL), the same schedule runbook
steps use. A long-running host executes it: ``broadcaster schedule run``, a
``broadcaster runbook run`` in progress, or ``broadcaster serve``; with several
nodes, whichever of them leads the scheduler.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from broadcaster.cli.output import EXIT_INVALID, EXIT_OK, banner, console, err_console, print_json

EXECUTED_BY = ("executed by a running `broadcaster schedule run` (or `broadcaster serve`, or a `broadcaster runbook "
               "run` in progress); start one if none is running")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schedule = commands.add_parser("schedule", help="scheduled fires and runbook steps waiting for their time")
    sub = schedule.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="every scheduled occurrence, next first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    cancel = sub.add_parser("cancel", help="cancel a scheduled fire (sch-…), a whole run, or one job (RUN/STEP/N)")
    cancel.add_argument("id")
    cancel.set_defaults(handler=cmd_cancel)
    run = sub.add_parser("run", help="execute scheduled jobs in the foreground (until interrupted)")
    run.add_argument("--until-idle", action="store_true", help="return once no run and no job is left")
    run.set_defaults(handler=cmd_run)


async def schedule_fire(args: argparse.Namespace) -> int:
    """``fire --at/--every/--until``: check the alert now, as it will go out, then keep it as a one-step run."""
    from broadcaster.app.context import open_app
    from broadcaster.app.fire import Request, check_request
    from broadcaster.app.schedule import plan_schedule, store_schedule
    from broadcaster.cli.identity import actor_of, identify, permitted
    from broadcaster.cli.prompts import confirm_live, inputs_from
    from broadcaster.runbooks.durations import format_duration
    from broadcaster.states import Mode

    async with open_app(args.config, args.db) as app:
        mode = Mode(args.mode)
        user = await identify(args, app, needed_for="a live scheduled fire" if mode == Mode.LIVE else None)
        if user is not None:
            await permitted(app, user, lambda: check_request(app, user, Request("fire", mode, template=args.template)),
                            action="schedule", template=args.template, mode=str(mode))
        inputs = inputs_from(args, app.catalogue, app.config.timezone)
        scheduled = await plan_schedule(app, args.template, inputs, mode=mode,
                                        areas=tuple(args.area), selection=args.channels, at=args.at,
                                        every=args.every, until=args.until, now=time.time(),
                                        started_by=actor_of(user))
        if args.mode == "live" and not args.yes and not await confirm_live(scheduled.plan):
            err_console().print("not confirmed: nothing was scheduled.", style="bold red")
            return EXIT_INVALID
        await store_schedule(app, scheduled)
        await app.audit(actor_of(user), "schedule", {
            "schedule_id": scheduled.run.id, "template": scheduled.plan.template.id, "mode": str(mode),
            "at": scheduled.at.isoformat(), "every_s": scheduled.every_s, "until": scheduled.until,
            "channels": list(scheduled.plan.alert.channels)})
    run, plan, at = scheduled.run, scheduled.plan, scheduled.at
    if args.json:
        print_json({"schedule_id": run.id, "template": plan.template.id, "mode": args.mode, "at": at.isoformat(),
                    "every_s": scheduled.every_s, "until": scheduled.until, "channels": list(plan.alert.channels)})
        return EXIT_OK
    banner(args.mode)
    missing = sorted({env for c in plan.channels if args.mode != "dry-run" for _, env in c.missing_env()})
    if missing:
        err_console().print(f"warning: the scheduler host will need {', '.join(missing)} set in its environment",
                            style="yellow")
    repeats = ""
    if scheduled.every_s is not None:
        repeats = (f", then every {format_duration(scheduled.every_s)} until {scheduled.until} "
                   f"({scheduled.count} in all)")
    console().print(f"scheduled [bold]{run.id}[/] · {plan.template.id} · {args.mode} · first at "
                    f"{at.isoformat()}{repeats}")
    console().print(f"{EXECUTED_BY}. See `broadcaster schedule list`; cancel with `broadcaster schedule cancel "
                    f"{run.id}`.")
    return EXIT_OK


async def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from broadcaster.app.context import open_app
    from broadcaster.runbooks.scheduler import job_id
    from broadcaster.timefmt import iso_seconds

    async with open_app(args.config, args.db) as app:
        tz = app.config.timezone
        jobs: list[dict[str, Any]] = []
        for row in await app.store.runs.scheduled():
            run = await app.store.runs.get(row.run_id)
            jobs.append({"job_id": job_id(row.run_id, row.step_id, row.occurrence), "run_id": run.id,
                         "kind": str(run.kind), "runbook": run.runbook, "step": row.step_id,
                         "occurrence": row.occurrence, "mode": str(run.mode), "by": run.started_by,
                         "facts": key_facts(run.inputs, run.spec),
                         "next_run": iso_seconds(row.due_at, tz) if row.due_at is not None else None})
    if args.json:
        print_json({"jobs": jobs})
        return EXIT_OK
    table = Table("next run", "job", "kind", "runbook / template", "mode", "what", "by", title="scheduled jobs",
                  title_justify="left")
    for job in jobs:
        table.add_row(job["next_run"] or "-", job["job_id"], job["kind"], job["runbook"], job["mode"],
                      job["facts"] or "-", job["by"] or "-")
    console().print(table)
    if not jobs:
        console().print("nothing scheduled")
    return EXIT_OK


def key_facts(inputs: dict[str, dict[str, str]], spec: dict[str, Any]) -> str:
    """What tells two scheduled jobs apart: a run's inputs, or a scheduled fire's variables, in English.

    Two closures of different roads must not both read "road_closure dry-run".
    """
    values = inputs
    if not values:
        steps = spec.get("steps") or [{}]
        values = steps[0].get("vars") or {} if isinstance(steps[0], dict) else {}
    facts = [f"{name}={by_lang.get('en') or next(iter(by_lang.values()), '')}" for name, by_lang in values.items()
             if isinstance(by_lang, dict) and by_lang]
    return ", ".join(facts)


async def cmd_cancel(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.runbook import stop_run
    from broadcaster.errors import SelectionError
    from broadcaster.runbooks.ids import is_run_id
    from broadcaster.runbooks.scheduler import parse_job_id
    from broadcaster.states import StepState

    async with open_app(args.config, args.db) as app:
        if is_run_id(args.id) and "/" not in args.id:
            steps = [r for r in await app.store.runs.steps(args.id) if r.state == StepState.SCHEDULED]
            run = await stop_run(app, args.id, "cancelled by an operator")
            console().print(f"{run.id} cancelled: {len(steps)} job(s) removed; nothing more of it fires")
            return EXIT_OK
        parsed = parse_job_id(args.id)
        if parsed is None:
            raise SelectionError(f"{args.id!r} is neither a schedule or run id (sch-…, run-…) nor a job id "
                                 "(RUN/STEP/N)")
        if not await app.store.runs.move_step(*parsed, from_states=(StepState.SCHEDULED,),
                                              to_state=StepState.SKIPPED, detail="cancelled by an operator"):
            raise SelectionError(f"no scheduled job {args.id!r}; see `broadcaster schedule list`")
    console().print(f"job {args.id} cancelled: that occurrence will not fire")
    return EXIT_OK


async def cmd_run(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.runbook import host
    from broadcaster.cli.prompts import stop_on_sigterm

    out = console()
    out.print("scheduler host: executing scheduled jobs; Ctrl-C (or SIGTERM) to stop (the schedule is kept)")
    terminated = stop_on_sigterm()
    try:
        async with open_app(args.config, args.db, name="broadcaster scheduler") as app:
            scheduler = host(app, report=lambda line: out.print(line, markup=False))
            await scheduler.start()
            try:
                await scheduler.serve(until_idle=args.until_idle)
            finally:
                await scheduler.shutdown()
    except (KeyboardInterrupt, asyncio.CancelledError):
        err_console().print("scheduler host stopped; every schedule is kept in the database", style="red")
        return EXIT_OK if terminated() else 130
    return EXIT_OK
