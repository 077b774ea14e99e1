"""``broadcaster runbook check|rehearse|run|status|stop|confirm|resume``, and how runs are shown."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

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
from broadcaster.cli.prompts import confirm_live_run, stop_on_sigterm
from broadcaster.cli.views import show_planned, show_run, show_timeline

if TYPE_CHECKING:
    from broadcaster.app.context import App
    from broadcaster.config import Config
    from broadcaster.runbooks.model import Runbook
    from broadcaster.store.records import RunRecord


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


def find_runbook(config: Config, name: str) -> Runbook:
    """A path, or the id of a runbook in the runbooks folder of channels.toml."""
    from broadcaster.runbooks.model import load_runbook

    path = Path(name)
    if not path.exists() and "/" not in name and not name.endswith(".toml"):
        path = config.runbooks_dir / f"{name}.toml"
    return load_runbook(path)


# --- check ---------------------------------------------------------------------------------


async def cmd_check(args: argparse.Namespace) -> int:
    from broadcaster.app.context import load
    from broadcaster.runbooks.check import check_runbook

    config, catalogue, _ = load(args.config, args.db)
    runbook = find_runbook(config, args.file)
    problems = check_runbook(runbook, config, catalogue)
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


async def cmd_rehearse(args: argparse.Namespace) -> int:
    from broadcaster.app.context import load
    from broadcaster.app.rehearse import rehearsal_json, rehearse
    from broadcaster.runbooks.inputs import resolve_inputs
    from broadcaster.templates.variables import parse_var_args

    config, catalogue, database = load(args.config, args.db)
    runbook = find_runbook(config, args.file)
    start = time.time()
    if args.start:
        start = time_of_text(args.start, config, start)
    inputs = resolve_inputs(runbook, parse_var_args(args.input), start=start, tz=config.timezone, use_examples=True)
    # A loop of its own (virtual time), on a worker thread.
    result = await asyncio.to_thread(rehearse, config, catalogue, database, runbook, inputs, start=start)
    if args.json:
        print_json(rehearsal_json(config, result))
    else:
        show_timeline(config, result)
    return EXIT_OK if all(e.fired.state == "fired" for e in result.entries) else EXIT_FAILED


def time_of_text(text: str, config: Config, now: float) -> float:
    from broadcaster.runbooks.durations import DurationError, resolve_datetime
    from broadcaster.runbooks.refs import RunbookError

    try:
        return resolve_datetime(text, now, config.timezone).timestamp()
    except DurationError as exc:
        raise RunbookError(str(exc), where="--start") from None


# --- run -------------------------------------------------------------------------------------


async def cmd_run(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.rehearse import preflight
    from broadcaster.app.users import require
    from broadcaster.cli.identity import actor_of, identify, permitted
    from broadcaster.runbooks.ids import new_run_id
    from broadcaster.runbooks.inputs import resolve_inputs
    from broadcaster.states import Mode, RunKind, RunState
    from broadcaster.store.records import RunRecord
    from broadcaster.templates.variables import parse_var_args

    async with open_app(args.config, args.db, name="broadcaster runbook run") as app:
        runbook = find_runbook(app.config, args.file)
        mode = Mode(args.mode)
        # Who runs it: a live run acts as a verified user with the officer role (as POST /api/runbooks/{id}/run).
        user = await identify(args, app, needed_for="a live runbook run" if mode == Mode.LIVE else None)
        if user is not None:
            needed = "officer" if mode == Mode.LIVE else "operator"
            await permitted(app, user, lambda: require(user, needed, f"a {mode} runbook run"), action="runbook_run",
                            runbook=runbook.id, mode=str(mode))
        start = time.time()
        inputs = resolve_inputs(runbook, parse_var_args(args.input), start=start, tz=app.config.timezone,
                                use_examples=args.use_examples)
        result = await asyncio.to_thread(preflight, app.config, app.catalogue, runbook, inputs, mode, start)
        show_planned(app.config, runbook, result)
        if mode == Mode.LIVE and not args.yes and not await confirm_live_run(runbook):
            problem("not confirmed: nothing was sent.", style="bold red")
            return EXIT_INVALID
        run = RunRecord(id=new_run_id(RunKind.RUNBOOK, start), kind=RunKind.RUNBOOK, runbook=runbook.id,
                        source=runbook.source, spec=dict(runbook.raw), config=str(app.config.path), mode=mode,
                        inputs=inputs, state=RunState.RUNNING, started_at=start, started_by=actor_of(user))
        await app.audit(actor_of(user), "runbook_run", {"runbook": runbook.id, "run_id": run.id, "mode": str(mode),
                                                        "inputs": inputs})
        banner(args.mode)
        return await host_run(app, run, new=True)








async def host_run(app: App, run: RunRecord, *, new: bool) -> int:
    """Host the scheduler in the foreground until ``run`` finishes or is stopped."""
    from broadcaster.app.runbook import host
    from broadcaster.states import DeliveryState, RunState, StepState

    out = console()
    stop_on_sigterm()  # like Ctrl-C: the run keeps its schedule, and this host hands the lead over at once
    scheduler = host(app, report=lambda line: out.print(line, markup=False))
    try:
        await scheduler.start()
        try:
            if new:
                await scheduler.start_run(run)
            final = await scheduler.serve(run_id=run.id)
        finally:
            await scheduler.shutdown()
    except (KeyboardInterrupt, asyncio.CancelledError):
        err_console().print(f"interrupted: run {run.id} keeps its schedule. Host it again with `broadcaster runbook "
                            f"resume {run.id}` (or `broadcaster schedule run`), or stop it with `broadcaster runbook "
                            f"stop {run.id}`", style="red")
        return 130
    assert final is not None
    await show_run(app, final)
    rows = await app.store.runs.steps(run.id)
    delivered = [d.state == DeliveryState.SENT for r in rows if r.alert_id
                 for d in await app.store.alerts.deliveries(r.alert_id)]
    ok = final.state == RunState.FINISHED and all(r.state in (StepState.FIRED, StepState.SKIPPED) for r in rows) \
        and all(delivered)
    return EXIT_OK if ok else EXIT_FAILED


# --- status, stop, confirm, resume -----------------------------------------------------------


async def cmd_status(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.runbook import run_json
    from broadcaster.states import RunKind, RunState

    async with open_app(args.config, args.db) as app:
        runs = [await app.store.runs.get(args.run_id)] if args.run_id else [
            r for r in await app.store.runs.recent((RunState.RUNNING,)) if r.kind != RunKind.REHEARSAL]
        if args.json:
            print_json({"runs": [await run_json(app, r) for r in runs]})
            return EXIT_OK
        if not runs:
            console().print("no run in progress")
        for run in runs:
            await show_run(app, run)
    return EXIT_OK


async def cmd_stop(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.runbook import stop_run
    from broadcaster.states import StepState

    async with open_app(args.config, args.db) as app:
        waiting = [r for r in await app.store.runs.steps(args.run_id) if r.state == StepState.SCHEDULED]
        run = await stop_run(app, args.run_id, "stopped by an operator")
    console().print(f"run {run.id} stopped: {len(waiting)} scheduled job(s) removed; nothing more of it fires")
    return EXIT_OK


async def cmd_confirm(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.runbook import confirm_step

    async with open_app(args.config, args.db) as app:
        await confirm_step(app, args.run_id, args.step_id, now=time.time())
    console().print(f"step {args.step_id} of run {args.run_id} confirmed; the scheduler host fires it at its time "
                    f"(it checks every few seconds)")
    return EXIT_OK


async def cmd_resume(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.runbooks.refs import RunbookError
    from broadcaster.states import RunState

    async with open_app(args.config, args.db, name="broadcaster runbook run") as app:
        run = await app.store.runs.get(args.run_id)
        if run.state != RunState.RUNNING:
            raise RunbookError(f"run {run.id} is {run.state}: nothing to resume", where=run.id)
        banner(run.mode)
        return await host_run(app, run, new=False)


# --- how runs are shown ----------------------------------------------------------------------






