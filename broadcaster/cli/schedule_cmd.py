"""``broadcaster schedule list|cancel|run`` and ``broadcaster fire ... --at / --every --until``.

A scheduled fire is stored as a one-step run (id ``sch-…``) whose step is a job
in the persistent job store in the database (SQLite or PostgreSQL), the same
store runbook steps use. A long-running host executes it: ``broadcaster schedule
run``, a ``broadcaster runbook run`` in progress, or ``broadcaster serve``; with
several nodes on PostgreSQL, whichever of them leads the scheduler. With
``--every``, occurrence 0 is the alert and each later occurrence re-sends it as
an update in the same thread, until ``--until``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime
from typing import Any

from rich.table import Table

from broadcaster.app import App, load_app
from broadcaster.cli.output import EXIT_OK, banner, console, err_console, print_json
from broadcaster.engine.outbox import plan_alert
from broadcaster.errors import SelectionError
from broadcaster.runbooks.check import check_runbook, require_clean
from broadcaster.runbooks.durations import DurationError, format_duration, parse_duration, resolve_datetime
from broadcaster.runbooks.firing import advance_run
from broadcaster.runbooks.model import parse_runbook
from broadcaster.runbooks.records import RunRecord
from broadcaster.runbooks.store import is_run_id, new_run_id, run_store
from broadcaster.timefmt import iso_seconds

EXECUTED_BY = ("executed by a running `broadcaster schedule run` (or `broadcaster serve`, or a `broadcaster runbook "
               "run` in progress); start one if none is running")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schedule = commands.add_parser("schedule", help="scheduled fires and runbook steps in the job store")
    sub = schedule.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="every scheduled job, next first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    cancel = sub.add_parser("cancel", help="cancel a scheduled fire (sch-…), a whole run, or one job (RUN/STEP/N)")
    cancel.add_argument("id")
    cancel.set_defaults(handler=cmd_cancel)
    run = sub.add_parser("run", help="execute scheduled jobs in the foreground (until interrupted)")
    run.add_argument("--until-idle", action="store_true", help="return once no run and no job is left")
    run.set_defaults(handler=cmd_run)


def _moment(text: str, what: str, app: App, now: float) -> datetime:
    try:
        return resolve_datetime(text, now, app.config.timezone)
    except DurationError as exc:
        raise SelectionError(f"{what}: {exc}") from None


def schedule_fire(args: argparse.Namespace) -> int:
    """``fire --at/--every/--until``: check the alert now, store it as a one-step run, add its job."""
    from broadcaster.cli.fire_cmd import confirm_live, inputs_from
    from broadcaster.runbooks.scheduler import add_step_job, job_store

    app = load_app(args.config, args.db)
    inputs = {name: {lang: values.get(lang, next(iter(values.values()))) for lang in ("ar", "en")}
              for name, values in inputs_from(args, app).items() if values}
    now = time.time()
    tz = app.config.timezone
    at = _moment(args.at, "--at", app, now) if args.at else datetime.fromtimestamp(now, tz)
    if at.timestamp() < now - 60:
        raise SelectionError(f"--at {args.at}: that time has passed ({iso_seconds(now, tz)} now)")
    step: dict[str, Any] = {"id": "fire", "template": args.template, "channels": args.channels,
                            "areas": list(args.area), "vars": inputs, "at": at.isoformat()}
    if args.every or args.until:
        if not (args.every and args.until):
            raise SelectionError("--every and --until go together: repeat every DURATION until DATETIME")
        try:
            every = parse_duration(args.every)
        except DurationError as exc:
            raise SelectionError(f"--every: {exc}") from None
        if every < 60:
            raise SelectionError("--every: repeat at most once a minute")
        until = _moment(args.until, "--until", app, now)
        if until <= at:
            raise SelectionError(f"--until {args.until}: must come after the first fire ({at.isoformat()})")
        step.update(every=f"{int(every)}s", until=until.isoformat())
    # Everything is checked now, at the time it will fire, so the schedule cannot fail on input later.
    plan = plan_alert(app.config, app.catalogue, args.template, inputs, mode=args.mode, now=at.timestamp(),
                      areas=tuple(args.area), selection=args.channels, store=app.store)
    template = plan.template
    run_id = new_run_id("schedule", now)
    raw = {"name": dict(template.title), "description": f"fire {template.id}, scheduled", "steps": [step]}
    runbook = parse_runbook(raw, runbook_id=template.id, source=f"schedule {run_id}")
    require_clean(check_runbook(runbook, app.config, app.catalogue, inputs={}, start=now))
    if args.mode == "live" and not args.yes and not confirm_live(plan):
        err_console().print("not confirmed: nothing was scheduled.", style="bold red")
        return 2
    run = RunRecord(id=run_id, kind="schedule", runbook=template.id, source=None, spec=raw,
                    config=str(app.config.path), mode=args.mode, inputs={}, state="running", started_at=now)
    store = run_store(app)
    store.create_run(run)
    with job_store(app) as scheduler:
        for due in advance_run(app, runbook, run):
            add_step_job(scheduler, run.id, due.step.id, due.occurrence, due.due_at)
    repeats = ""
    if "every" in step:
        count = int((datetime.fromisoformat(step["until"]).timestamp() - at.timestamp() - 1e-6)
                    // parse_duration(step["every"])) + 1
        repeats = f", then every {format_duration(parse_duration(step['every']))} until {step['until']} " \
                  f"({count} in all)"
    if args.json:
        print_json({"schedule_id": run.id, "template": template.id, "mode": args.mode, "at": at.isoformat(),
                    "every_s": parse_duration(step["every"]) if "every" in step else None,
                    "until": step.get("until"), "channels": list(plan.alert.channels)})
        return EXIT_OK
    banner(args.mode)
    missing = sorted({env for c in plan.channels if args.mode != "dry-run" for _, env in c.missing_env()})
    if missing:
        err_console().print(f"warning: the scheduler host will need {', '.join(missing)} set in its environment",
                            style="yellow")
    console().print(f"scheduled [bold]{run.id}[/] · {template.id} · {args.mode} · first at {at.isoformat()}{repeats}")
    console().print(f"{EXECUTED_BY}. See `broadcaster schedule list`; cancel with `broadcaster schedule cancel "
                    f"{run.id}`.")
    return EXIT_OK


def jobs_json(app: App) -> list[dict[str, Any]]:
    from broadcaster.runbooks.scheduler import job_store, parse_job_id

    store = run_store(app)
    tz = app.config.timezone
    result = []
    with job_store(app) as scheduler:
        jobs = scheduler.get_jobs()
    for job in jobs:
        parsed = parse_job_id(job.id)
        run = store.find_run(parsed[0]) if parsed else None
        next_run = job.next_run_time
        result.append({
            "job_id": job.id,
            "run_id": parsed[0] if parsed else None,
            "kind": run.kind if run else None,
            "runbook": run.runbook if run else None,
            "step": parsed[1] if parsed else None,
            "occurrence": parsed[2] if parsed else None,
            "mode": run.mode if run else None,
            "next_run": next_run.astimezone(tz).isoformat(timespec="seconds") if next_run else None,
        })
    return sorted(result, key=lambda j: j["next_run"] or "")


def cmd_list(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    jobs = jobs_json(app)
    if args.json:
        print_json({"jobs": jobs})
        return EXIT_OK
    table = Table("next run", "job", "kind", "runbook / template", "mode", title="scheduled jobs",
                  title_justify="left")
    for job in jobs:
        table.add_row(job["next_run"] or "-", job["job_id"], job["kind"] or "?", job["runbook"] or "?",
                      job["mode"] or "?")
    console().print(table)
    if not jobs:
        console().print("nothing scheduled")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from broadcaster.cli.runbook_cmd import stop_run
    from broadcaster.runbooks.scheduler import job_store, parse_job_id

    app = load_app(args.config, args.db)
    if is_run_id(args.id) and "/" not in args.id:
        run, removed = stop_run(app, args.id, "cancelled by an operator")
        console().print(f"{run.id} cancelled: {removed} job(s) removed; nothing more of it fires")
        return EXIT_OK
    parsed = parse_job_id(args.id)
    if parsed is None:
        raise SelectionError(f"{args.id!r} is neither a schedule or run id (sch-…, run-…) nor a job id (RUN/STEP/N)")
    with job_store(app) as scheduler:
        job = scheduler.get_job(args.id)
        if job is None:
            raise SelectionError(f"no scheduled job {args.id!r}; see `broadcaster schedule list`")
        scheduler.remove_job(args.id)
    run_store(app).move_run_step(*parsed, from_states=("scheduled",), to_state="skipped",
                                 detail="cancelled by an operator")
    console().print(f"job {args.id} cancelled: that occurrence will not fire")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from broadcaster.runbooks.scheduler import Host

    app = load_app(args.config, args.db)
    out = console()

    async def main() -> None:
        host = Host(app, report=lambda line: out.print(line, markup=False))
        await host.start()
        try:
            await host.serve(until_idle=args.until_idle)
        finally:
            await host.shutdown()

    out.print("scheduler host: executing scheduled jobs; Ctrl-C to stop (the schedule is kept)")
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        err_console().print("scheduler host stopped; every schedule is kept in the job store", style="red")
        return 130
    return EXIT_OK
