"""``broadcaster preview`` and ``broadcaster fire``."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from broadcaster.cli.output import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    add_mode_options,
    add_var_options,
    banner,
    console,
    err_console,
    print_json,
    problem,
)
from broadcaster.cli.progress_notes import ChannelNote
from broadcaster.cli.prompts import confirm_live, inputs_from
from broadcaster.cli.views import show_preview
from broadcaster.states import DeliveryState, Mode

if TYPE_CHECKING:
    from broadcaster.app.context import App
    from broadcaster.app.fire import Request
    from broadcaster.engine.outbox import Plan
    from broadcaster.store.records import AttemptResult


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    preview = commands.add_parser("preview", help="render a template, or a follow-up of an alert, for every channel, "
                                  "with lengths and cost")
    preview.add_argument("template", nargs="?", help="the template (omit with --update, --cancel, --all-clear)")
    values = preview.add_mutually_exclusive_group()
    values.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable value; NAME.ar=/NAME.en= for a text variable's two languages")
    values.add_argument("--use-examples", action="store_true", help="fill every variable from the template's examples")
    follow = preview.add_mutually_exclusive_group()
    follow.add_argument("--update", metavar="ALERT_ID", help="preview an update of that alert (--var: what changed)")
    follow.add_argument("--cancel", metavar="ALERT_ID", help="preview the cancel of that alert (with --reason)")
    follow.add_argument("--all-clear", metavar="ALERT_ID", help="preview the all-clear of that alert")
    preview.add_argument("--reason", choices=("error", "called_off"), default="error",
                         help="with --cancel: sent in error (default) or called off")
    preview.add_argument("--channels", default="all", metavar="SEL", help="all | id,id | kind:KIND | area:CODE")
    preview.add_argument("--area", action="append", default=[], help="alert area code(s) from the gazetteer")
    preview.add_argument("--exercise", action="store_true", help="preview as an exercise (marked texts)")
    preview.add_argument("--cards", metavar="DIR", help="also write the alert card of each language as a PNG in DIR")
    preview.add_argument("--json", action="store_true")
    preview.set_defaults(handler=cmd_preview)

    fire = commands.add_parser("fire", help="fire an alert to every selected channel at once")
    fire.add_argument("template")
    add_var_options(fire)
    fire.add_argument("--channels", default="all", metavar="SEL", help="all | id,id | kind:KIND | area:CODE")
    fire.add_argument("--area", action="append", default=[], help="alert area code(s) from the gazetteer")
    add_mode_options(fire)
    fire.add_argument("--log", action="store_true", help="print the delivery log when done")
    fire.add_argument("--queue", action="store_true",
                      help="commit the alert and leave its delivery to running `broadcaster worker` nodes")
    # Scheduled and recurring one-off alerts (broadcaster.cli.schedule_cmd): stored for a scheduler host.
    fire.add_argument("--at", metavar="DATETIME",
                      help="fire later: ISO 8601 with offset, or +2h / +1d 22:00 from now (run by a scheduler host)")
    fire.add_argument("--every", metavar="DURATION", help="repeat, as updates in the same thread (e.g. 1d, 2h)")
    fire.add_argument("--until", metavar="DATETIME", help="with --every: no repeat at or after this time")
    fire.set_defaults(handler=cmd_fire)






async def cmd_preview(args: argparse.Namespace) -> int:
    from broadcaster.app.context import load
    from broadcaster.channels.registry import kind_of
    from broadcaster.engine.outbox import count_phones, plan_alert
    from broadcaster.errors import SelectionError
    from broadcaster.netguard import no_network
    from broadcaster.states import Mode

    if args.update or args.cancel or args.all_clear:
        from broadcaster.cli.follow_up_preview import preview_follow_up

        return await preview_follow_up(args)
    if args.template is None:
        raise SelectionError("preview needs a template, or --update / --cancel / --all-clear ALERT_ID",
                             where="preview")
    if not (args.var or args.use_examples):
        raise SelectionError(f"preview {args.template}: give --var NAME=VALUE ... or --use-examples",
                             where="preview")
    with no_network():  # a preview stores nothing and reaches nothing
        config, catalogue, _ = load(args.config, args.db)
        template = catalogue.get(args.template)
        plan = await plan_alert(config, catalogue, args.template, inputs_from(args, catalogue, config.timezone),
                                mode=Mode.EXERCISE if args.exercise else Mode.DRY_RUN, now=time.time(),
                                areas=tuple(args.area), selection=args.channels, require_approval=False)
        await count_phones(plan)
    written = await write_preview_cards(plan, args.cards) if args.cards else []
    if args.json:
        print_json({"template": template.id, "approved": template.approved,
                    "messages": [row.as_json() for row in plan.rows], "sms": plan.sms_total.as_json(),
                    "cards": [str(p) for p in written]})
        return EXIT_OK
    if not template.approved:
        err_console().print(f"warning: template {template.id} is not approved; it cannot be fired", style="bold red")
    show_preview(plan)
    carried = [c.id for c in plan.channels if kind_of(c).card_languages(c)]
    if carried:
        console().print(f"alert cards go with: {', '.join(carried)}")
    for path in written:
        console().print(f"card written: {path}")
    return EXIT_OK


async def write_preview_cards(plan: Plan, folder: str) -> list[Path]:
    """Both languages' cards of the previewed alert, as PNGs in ``folder`` (``preview --cards DIR``)."""
    from broadcaster.app.cards import write_cards

    return await write_cards(plan, Path(folder))






async def cmd_fire(args: argparse.Namespace) -> int:
    from broadcaster.app.context import open_app
    from broadcaster.app.fire import Request
    from broadcaster.errors import ConfigError
    from broadcaster.states import Mode

    if args.at or args.every or args.until:
        from broadcaster.cli.schedule_cmd import schedule_fire

        return await schedule_fire(args)
    if args.queue and args.mode == "dry-run":
        raise ConfigError("--queue: a dry-run is never left to workers; it runs here, on this machine",
                          where="--queue")
    async with open_app(args.config, args.db) as app:
        inputs = inputs_from(args, app.catalogue, app.config.timezone)
        request = Request("fire", Mode(args.mode), template=args.template, inputs=inputs, areas=tuple(args.area),
                          selection=args.channels)
        return await send(args, app, request)


async def send(args: argparse.Namespace, app: App, request: Request) -> int:
    """Check who asks, plan, confirm, launch and run a fire, update or cancel; print the result.

    A live request needs a verified identity (:mod:`broadcaster.cli.identity`);
    any request made with one is held to that user's role, exactly as the HTTP
    service holds it, before anything is planned.
    """
    from broadcaster.app.fire import Held, check_request, launch, plan_request, queue_plan
    from broadcaster.cli.identity import actor_of, identify, permitted

    user = await identify(args, app, needed_for=f"a live {request.kind}" if request.mode == "live" else None)
    if user is not None:
        asked = {"template": request.template} if request.template else {"original": request.original}
        await permitted(app, user, lambda: check_request(app, user, request), action=request.kind,
                        mode=str(request.mode), **asked)
    who = actor_of(user)
    plan = await plan_request(app, request, now=time.time(), created_by=who)
    for channel_id, why in plan.skipped.items():  # a follow-up: the original's channels today's config rules out
        problem(f"warning: channel {channel_id!r} is skipped: {why}", style="bold yellow")
    for note in plan.notes:  # e.g. a follow-up marker a WhatsApp template cannot carry
        problem(f"note: {note}", style="yellow")
    if getattr(args, "log", False) and args.mode == "dry-run" and not args.json:
        show_preview(plan)  # a dry-run with --log shows every channel's text before it runs
    if args.mode == "live" and not args.yes and not await confirm_live(plan):
        err_console().print("not confirmed: nothing was sent.", style="bold red")
        return EXIT_INVALID
    decision = await launch(app, plan, request, actor=who, now=time.time())
    if isinstance(decision, Held):
        return show_held(app, decision.alert_id, decision.confirm_by, as_json=args.json)
    if getattr(args, "queue", False):
        queued = await queue_plan(app, plan)
        return show_queued(plan, queued.created, queued.duplicates, [n.id for n in queued.workers],
                           as_json=args.json)
    return await run_and_report(app, plan, as_json=args.json, show_log=getattr(args, "log", False))


def show_held(app: App, alert_id: str, confirm_by: float, *, as_json: bool) -> int:
    from broadcaster.timefmt import iso_seconds

    until = iso_seconds(confirm_by, app.config.timezone)
    if as_json:
        print_json({"alert_id": alert_id, "mode": "live", "state": "awaiting_confirmation", "confirm_by": until,
                    "deliveries": []})
        return EXIT_OK
    banner("live")
    console().print(f"alert [bold]{alert_id}[/] is a two-person alert: nothing is sent until a different officer "
                    f"confirms it by {until}: `broadcaster confirm {alert_id}`, the console, or "
                    f"POST /api/alerts/{alert_id}/confirm")
    return EXIT_OK


def show_queued(plan: Plan, created: int, skipped: int, workers: list[str], *, as_json: bool) -> int:
    if as_json:
        print_json({"alert_id": plan.alert.id, "mode": str(plan.alert.mode), "queued": created,
                    "duplicates_skipped": skipped, "workers": workers})
    else:
        banner(plan.alert.mode)
        console().print(f"alert [bold]{plan.alert.id}[/] queued: {created} deliveries for "
                        f"{len(workers)} worker node(s); follow it with `broadcaster log {plan.alert.id}`")
    if not workers:
        err_console().print("warning: no worker node is running: start `broadcaster worker` to deliver this alert",
                            style="bold red")
    return EXIT_OK


async def run_and_report(app: App, plan: Plan, *, as_json: bool, show_log: bool = False,
                         committed: Callable[[], None] | None = None) -> int:
    """Commit and deliver a checked plan; print progress, then the result. ``committed`` is told of the commit."""
    from rich.live import Live
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from broadcaster.app.fire import run_plan
    from broadcaster.errors import StoreError

    mode = plan.alert.mode
    if not as_json:
        banner(mode)
        console().print(f"alert [bold]{plan.alert.id}[/] · {plan.template.id} · {len(plan.channels)} channel(s)")
        drills = [c.id for c in app.config.channels if c.exercise and c.id not in plan.alert.channels]
        if drills and mode != Mode.EXERCISE:
            console().print(f"drill channels left out (exercise = true, reached by --exercise only): "
                            f"{', '.join(drills)}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[note]}"), console=console(), transient=False)
    totals: Counter[str] = Counter()
    for row in plan.rows:
        totals[row.channel] += row.recipients
    notes = {c.id: ChannelNote(totals[c.id], mode) for c in plan.channels}
    tasks = {c.id: progress.add_task(c.id, total=totals[c.id], note="") for c in plan.channels}

    stored = False
    duplicates = 0

    def on_commit(created: int, skipped: int) -> None:
        nonlocal stored, duplicates
        stored, duplicates = True, skipped
        if committed is not None:
            committed()
        if skipped and not as_json:
            console().print(f"{skipped} duplicate phone number(s) skipped: one SMS per phone")

    def on_outcome(channel_id: str, result: AttemptResult) -> None:
        if channel_id not in notes:  # a fallback channel: SMS failover moved deliveries to it
            notes[channel_id] = ChannelNote(0, mode)
            tasks[channel_id] = progress.add_task(f"{channel_id} (fallback)", total=None, note="")
        note = notes[channel_id]
        note.record(result)
        progress.update(tasks[channel_id], completed=note.finished, note=note.text())

    show_progress = not as_json and sys.stdout.isatty()
    try:
        with Live(progress, console=console(), transient=False) if show_progress else nullcontext():
            await run_plan(app, plan, observer=on_outcome, on_commit=on_commit)
            if duplicates:  # a phone skipped as a duplicate was never a delivery: no bar waits for it
                counts = await app.store.alerts.state_counts(plan.alert.id)
                for channel_id, note in notes.items():
                    note.total = sum(counts.get(channel_id, {}).values())
                    progress.update(tasks[channel_id], total=note.total, completed=note.finished, note=note.text())
    except StoreError as exc:
        if not stored:
            raise  # nothing was stored, so nothing was sent: the CLI says so (exit 2)
        # Some messages may have gone out; each is recorded or reconciled, never resent blindly.
        problem(f"error: the database failed while alert {plan.alert.id} was going out: {exc}", style="bold red")
        problem("deliveries not yet recorded are reconciled before any resend: once the database is back, "
                "run `broadcaster resume`")
        return EXIT_FAILED
    if plan.withdraws is not None and not as_json:
        counts = await app.store.alerts.state_counts(plan.withdraws)
        withdrawn = sum(by_state.get(DeliveryState.WITHDRAWN, 0) for by_state in counts.values())
        console().print(f"withdrew {withdrawn} undelivered message(s) of {plan.withdraws}")
    return await report(app, plan.alert.id, mode, as_json=as_json, show_log=show_log)


async def report(app: App, alert_id: str, mode: str, *, as_json: bool, show_log: bool = False) -> int:
    from broadcaster.cli.views import show_attempts, show_summary

    deliveries = await app.store.alerts.deliveries(alert_id)
    ok = all(d.state == DeliveryState.SENT for d in deliveries)
    if as_json:
        print_json({
            "alert_id": alert_id,
            "mode": str(mode),
            "deliveries": [
                {"channel": d.channel_id, "recipient": d.recipient, "language": d.language, "state": str(d.state),
                 "attempts": d.attempts, "provider_id": d.provider_id, "moved_from": d.moved_from}
                for d in deliveries
            ],
        })
    else:
        await show_summary(app, alert_id)
        if show_log:
            await show_attempts(app, alert_id, limit=60)
        if ok:
            console().print("dry-run: every delivery simulated; nothing left this machine" if mode == "dry-run"
                            else "all deliveries sent")
        else:
            console().print(f"[bold red]some deliveries did not go out[/]: see `broadcaster log {alert_id}`")
    return EXIT_OK if ok else EXIT_FAILED
