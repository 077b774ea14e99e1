"""``broadcaster runbook check|rehearse|run|status|stop|confirm|resume``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from rich.table import Table

from broadcaster.app import App, load_app
from broadcaster.cli.output import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    banner,
    console,
    err_console,
    print_json,
    problem,
)
from broadcaster.errors import ConfigError
from broadcaster.runbooks.check import check_runbook, require_clean
from broadcaster.runbooks.inputs import Inputs, resolve_inputs, time_of
from broadcaster.runbooks.model import Runbook, load_runbook, parse_runbook
from broadcaster.runbooks.records import RunRecord
from broadcaster.runbooks.refs import RunbookError
from broadcaster.runbooks.rehearse import Rehearsal, rehearse
from broadcaster.runbooks.report import rehearsal_json, run_json, show_run, show_timeline
from broadcaster.runbooks.store import new_run_id, run_store
from broadcaster.templates.variables import parse_var_args
from broadcaster.timefmt import iso_seconds


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runbook = commands.add_parser("runbook", help="check, rehearse and run runbooks (runbooks/*.toml)")
    sub = runbook.add_subparsers(dest="action", required=True, metavar="ACTION")

    check = sub.add_parser("check", help="check a runbook against the catalogue and channels.toml")
    check.add_argument("file", help="a runbook file, or its id in the runbooks folder")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_check)

    rehearse_p = sub.add_parser("rehearse", help="play a whole runbook in dry-run mode on a virtual clock")
    rehearse_p.add_argument("file", help="a runbook file, or its id in the runbooks folder")
    _input_options(rehearse_p, "inputs not given take the runbook's example values")
    rehearse_p.add_argument("--start", metavar="DATETIME", help="simulated start (ISO 8601 with offset; default now)")
    rehearse_p.add_argument("--json", action="store_true", help="print the timeline as one JSON object")
    rehearse_p.set_defaults(handler=cmd_rehearse)

    run = sub.add_parser("run", help="run a runbook for real: steps fire on schedule until it ends")
    run.add_argument("file", help="a runbook file, or its id in the runbooks folder")
    _input_options(run, "every input must be given (or --use-examples)")
    run.add_argument("--use-examples", action="store_true", help="take the example value of inputs not given")
    modes = run.add_mutually_exclusive_group(required=True)
    modes.add_argument("--exercise", dest="mode", action="store_const", const="exercise",
                       help="real sends, only to exercise = true channels, every text marked")
    modes.add_argument("--live", dest="mode", action="store_const", const="live", help="real alerts to the public")
    modes.add_argument("--dry-run", dest="mode", action="store_const", const="dry-run",
                       help="in real time, to recording transports only (to practise the schedule)")
    run.add_argument("--yes", action="store_true", help="skip the typed confirmation of a live run")
    run.set_defaults(handler=cmd_run)

    status = sub.add_parser("status", help="runs in progress (or one run) and their steps")
    status.add_argument("run_id", nargs="?")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    stop = sub.add_parser("stop", help="stop a run: nothing more of it fires")
    stop.add_argument("run_id")
    stop.set_defaults(handler=cmd_stop)

    confirm = sub.add_parser("confirm", help="confirm a step that waits for an operator")
    confirm.add_argument("run_id")
    confirm.add_argument("step_id")
    confirm.set_defaults(handler=cmd_confirm)

    resume = sub.add_parser("resume", help="host a run again after its process ended (its schedule was kept)")
    resume.add_argument("run_id")
    resume.set_defaults(handler=cmd_resume)


def _input_options(parser: argparse.ArgumentParser, note: str) -> None:
    parser.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                        help=f"a runbook input; NAME.ar=/NAME.en= for the two languages of a text ({note})")


def find_runbook(app: App, name: str) -> Runbook:
    """A path, or the id of a runbook in the runbooks folder of channels.toml."""
    path = Path(name)
    if not path.exists() and "/" not in name and not name.endswith(".toml"):
        path = app.config.runbooks_dir / f"{name}.toml"
    return load_runbook(path)


# --- check ---------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    runbook = find_runbook(app, args.file)
    problems = check_runbook(runbook, app.config, app.catalogue)
    errors = [p for p in problems if p.level == "error"]
    if args.json:
        print_json({"runbook": runbook.id, "ok": not errors,
                    "problems": [{"level": p.level, "where": p.where, "message": p.message} for p in problems]})
        return EXIT_INVALID if errors else EXIT_OK
    for p in problems:
        problem(f"{p.level}: {p}", style="red" if p.level == "error" else "yellow")
    if errors:
        err_console().print(f"{len(errors)} error(s) in {runbook.source}: it cannot be rehearsed or run",
                            style="bold red")
        return EXIT_INVALID
    console().print(f"{runbook.source}: ok · {len(runbook.steps)} step(s), {len(runbook.inputs)} input(s)")
    return EXIT_OK


# --- rehearse --------------------------------------------------------------------------------


def cmd_rehearse(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    runbook = find_runbook(app, args.file)
    start = time.time()
    if args.start:
        start = time_of_text(args.start, app, start)
    inputs = resolve_inputs(runbook, parse_var_args(args.input), start=start, tz=app.config.timezone,
                            use_examples=True)
    result = rehearse(app, runbook, inputs, start=start)
    if args.json:
        print_json(rehearsal_json(app, result))
    else:
        show_timeline(app, result)
    return EXIT_OK if all(e.fired.state == "fired" for e in result.entries) else EXIT_FAILED


def time_of_text(text: str, app: App, now: float) -> float:
    from broadcaster.runbooks.durations import DurationError, resolve_datetime

    try:
        return resolve_datetime(text, now, app.config.timezone).timestamp()
    except DurationError as exc:
        raise RunbookError(str(exc), where="--start") from None


# --- run -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    runbook = find_runbook(app, args.file)
    start = time.time()
    inputs = resolve_inputs(runbook, parse_var_args(args.input), start=start, tz=app.config.timezone,
                            use_examples=args.use_examples)
    preflight(app, runbook, inputs, args.mode, start)
    if args.mode == "live" and not args.yes and not confirm_live_run(runbook):
        problem("not confirmed: nothing was sent.", style="bold red")
        return EXIT_INVALID
    run = RunRecord(id=new_run_id("runbook", start), kind="runbook", runbook=runbook.id, source=runbook.source,
                    spec=dict(runbook.raw), config=str(app.config.path), mode=args.mode, inputs=inputs,
                    state="running", started_at=start)
    banner(args.mode)
    return host_run(app, run, new=True)


def preflight(app: App, runbook: Runbook, inputs: Inputs, mode: str, start: float) -> Rehearsal:
    """Before anything fires: the whole runbook rehearsed in ``mode`` against a scratch database."""
    result = preflight_checks(app, runbook, inputs, mode, start)
    show_planned(app, runbook, result)
    return result


def preflight_checks(app: App, runbook: Runbook, inputs: Inputs, mode: str, start: float, *,
                     guard_network: bool = True) -> Rehearsal:
    """The checks of :func:`preflight`, printing nothing (the service runs them on a worker thread)."""
    require_clean(check_runbook(runbook, app.config, app.catalogue, inputs=inputs, start=start))
    for step in runbook.steps:
        if step.at is not None and time_of(step.at, inputs, tz=app.config.timezone, where=step.where) < start - 60:
            raise RunbookError("its time is before the run starts; it would only be reported missed",
                               where=step.where)
    scratch = App(config=app.config, catalogue=app.catalogue, database=":memory:")
    try:
        result = rehearse(scratch, runbook, inputs, start=start, plan_mode=mode, guard_network=guard_network)
    finally:
        scratch.close()
    if mode != "dry-run":
        # Every step goes out later, from the scheduler: refuse now rather than fail step by step.
        missing = sorted({f"{c.id}.{key} -> ${env}" for e in result.entries if e.fired.plan
                          for c in e.fired.plan.channels for key, env in c.missing_env()})
        if missing:
            raise ConfigError(f"a {mode} run needs these environment variables, which are not set: "
                              f"{', '.join(missing)}", where=str(app.config.path))
    failed = [e for e in result.entries if e.fired.state == "failed"]
    if failed:
        first = failed[0].fired
        raise RunbookError(f"rehearsal before the run failed: {first.detail}", where=first.step.where)
    return result


def show_planned(app: App, runbook: Runbook, result: Rehearsal) -> None:
    out = console()
    table = Table("when", "step", "action", "channels", "SMS segments", title=f"{runbook.id}: planned timeline "
                  "(confirm steps shown at their earliest)", title_justify="left")
    tz = app.config.timezone
    for e in result.entries:
        sms = sum(r.cost_segments for r in e.fired.plan.rows if r.kind == "sms") if e.fired.plan else 0
        table.add_row(iso_seconds(e.fired.time, tz), f"{e.fired.step.id} #{e.fired.occurrence}",
                      e.fired.step.label + (" (confirm)" if e.auto_confirmed else ""),
                      ",".join(e.fired.plan.alert.channels) if e.fired.plan else "-", str(sms))
    out.print(table)


def confirm_live_run(runbook: Runbook) -> bool:
    banner("live")
    if not sys.stdin.isatty():
        err_console().print("a live run needs a typed confirmation on a terminal, or --yes", style="bold red")
        return False
    answer = input(f"Type the runbook id ({runbook.id}) to run it LIVE: ")
    return answer.strip() == runbook.id


def host_run(app: App, run: RunRecord, *, new: bool) -> int:
    """Host the scheduler in the foreground until ``run`` finishes or is stopped."""
    from broadcaster.runbooks.scheduler import Host

    out = console()

    async def main() -> RunRecord | None:
        host = Host(app, report=lambda line: out.print(line, markup=False))
        await host.start()
        try:
            if new:
                host.start_run(run)
            return await host.serve(run_id=run.id)
        finally:
            await host.shutdown()

    try:
        final = asyncio.run(main())
    except KeyboardInterrupt:
        err_console().print(f"interrupted: run {run.id} keeps its schedule. Host it again with `broadcaster runbook "
                            f"resume {run.id}` (or `broadcaster schedule run`), or stop it with `broadcaster runbook "
                            f"stop {run.id}`", style="red")
        return 130
    assert final is not None
    show_run(app, final)
    rows = run_store(app).run_steps(run.id)
    ok = final.state == "finished" and all(r.state in ("fired", "skipped") for r in rows) and all(
        d.state == "sent" for r in rows if r.alert_id for d in app.store.deliveries(r.alert_id))
    return EXIT_OK if ok else EXIT_FAILED


# --- status, stop, confirm, resume -----------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    store = run_store(app)
    runs = [store.run(args.run_id)] if args.run_id else [r for r in store.runs(("running",)) if r.kind != "rehearsal"]
    if args.json:
        print_json({"runs": [run_json(app, r) for r in runs]})
        return EXIT_OK
    if not runs:
        console().print("no run in progress")
    for run in runs:
        show_run(app, run)
    return EXIT_OK


def stop_run(app: App, run_id: str, reason: str) -> tuple[RunRecord, int]:
    """Mark the run stopped, skip what it still had to do, and remove its jobs from the job store."""
    from broadcaster.runbooks.scheduler import job_store, remove_run_jobs

    store = run_store(app)
    run = store.run(run_id)
    if run.state != "running":
        raise RunbookError(f"run {run_id} is already {run.state}", where=run.source or run_id)
    store.end_run(run_id, "stopped", time.time(), detail=reason)
    for row in store.run_steps(run_id):
        store.move_run_step(run_id, row.step_id, row.occurrence, from_states=("scheduled", "awaiting"),
                            to_state="skipped", detail=reason)
    with job_store(app) as scheduler:
        removed = remove_run_jobs(scheduler, run_id)
    return store.run(run_id), removed


def cmd_stop(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    run, removed = stop_run(app, args.run_id, "stopped by an operator")
    console().print(f"run {run.id} stopped: {removed} scheduled job(s) removed; nothing more of it fires")
    return EXIT_OK


def cmd_confirm(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    store = run_store(app)
    run = store.run(args.run_id)
    if run.state != "running":
        raise RunbookError(f"run {run.id} is {run.state}", where=run.id)
    step = parse_runbook(run.spec, runbook_id=run.runbook, source=run.source or run.id).step(args.step_id)
    if step is None or not step.confirm:
        raise RunbookError(f"run {run.id} has no step {args.step_id!r} that waits for confirmation", where=run.id)
    now = time.time()
    row = next((r for r in store.run_steps(run.id) if r.step_id == step.id and r.occurrence == 0), None)
    if row is not None and (row.state != "awaiting" or row.confirmed_at is not None):
        state = row.state if row.state != "awaiting" else "confirmed"
        raise RunbookError(f"step {step.id!r} is already {state}", where=run.id)
    if row is None:
        store.put_run_step(run.id, step.id, 0, "awaiting", None, confirmed_at=now, detail="confirmed in advance")
    elif not store.move_run_step(run.id, step.id, 0, from_states=("awaiting",), to_state="awaiting", confirmed_at=now):
        raise RunbookError(f"step {step.id!r} could not be confirmed; see `broadcaster runbook status {run.id}`",
                           where=run.id)
    console().print(f"step {step.id} of run {run.id} confirmed; the scheduler host fires it at its time "
                    f"(it checks every few seconds)")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    app = load_app(args.config, args.db)
    run = run_store(app).run(args.run_id)
    if run.state != "running":
        raise RunbookError(f"run {run.id} is {run.state}: nothing to resume", where=run.id)
    banner(run.mode)
    return host_run(app, run, new=False)
