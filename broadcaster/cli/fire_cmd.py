"""``broadcaster preview`` and ``broadcaster fire``."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from broadcaster.app import App, load_app
from broadcaster.cli.output import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    add_var_options,
    banner,
    console,
    err_console,
    print_json,
)
from broadcaster.engine.node import DEAD_AFTER_S
from broadcaster.engine.outbox import Plan, commit, plan_alert
from broadcaster.engine.runner import deliver, run_mode
from broadcaster.errors import ConfigError
from broadcaster.netguard import no_network
from broadcaster.service.receipts import callback_url
from broadcaster.templates.variables import example_inputs, parse_var_args


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    preview = commands.add_parser("preview", help="render a template for every channel, with lengths and cost")
    preview.add_argument("template")
    add_var_options(preview)
    preview.add_argument("--channels", default="all", metavar="SEL", help="all | id,id | kind:KIND | area:CODE")
    preview.add_argument("--area", action="append", default=[], help="alert area code(s) from the gazetteer")
    preview.add_argument("--exercise", action="store_true", help="preview as an exercise (marked texts)")
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
    # Scheduled and recurring one-off alerts (broadcaster.cli.schedule_cmd): stored as jobs for a scheduler host.
    fire.add_argument("--at", metavar="DATETIME",
                      help="fire later: ISO 8601 with offset, or +2h / +1d 22:00 from now (run by a scheduler host)")
    fire.add_argument("--every", metavar="DURATION", help="repeat, as updates in the same thread (e.g. 1d, 2h)")
    fire.add_argument("--until", metavar="DATETIME", help="with --every: no repeat at or after this time")
    fire.set_defaults(handler=cmd_fire)


def add_mode_options(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_mutually_exclusive_group(required=True)
    modes.add_argument("--dry-run", dest="mode", action="store_const", const="dry-run",
                       help="render, rate-limit and log everything; no network connection at all")
    modes.add_argument("--exercise", dest="mode", action="store_const", const="exercise",
                       help="real sends, only to exercise = true channels, every text marked")
    modes.add_argument("--live", dest="mode", action="store_const", const="live", help="real alerts to the public")
    parser.add_argument("--yes", action="store_true", help="skip the typed confirmation of a live fire")
    parser.add_argument("--json", action="store_true", help="print one JSON object for scripts")


def inputs_from(args: argparse.Namespace, app: App) -> dict[str, dict[str, str]]:
    if args.use_examples:
        return example_inputs(app.catalogue.get(args.template))
    return parse_var_args(args.var)


def cmd_preview(args: argparse.Namespace) -> int:
    with no_network():
        app = load_app(args.config, args.db)
        template = app.catalogue.get(args.template)
        plan = plan_alert(
            app.config, app.catalogue, args.template, inputs_from(args, app),
            mode="exercise" if args.exercise else "dry-run", now=time.time(), areas=tuple(args.area),
            selection=args.channels, require_approval=False,
        )
    if args.json:
        print_json({"template": template.id, "approved": template.approved,
                     "messages": [row.as_json() for row in plan.rows]})
        return EXIT_OK
    if not template.approved:
        err_console().print(f"warning: template {template.id} is not approved; it cannot be fired", style="bold red")
    show_preview(plan)
    return EXIT_OK


def show_preview(plan: Plan) -> None:
    out = console()
    table = Table("channel", "kind", "lang", "length", "segments", "recipients", "cost (segments)",
                  title=f"{plan.template.id}: {plan.template.title['ar']} / {plan.template.title['en']}")
    for row in plan.rows:
        r = row.rendered
        table.add_row(row.channel, row.kind, r.language, f"{r.length}/{r.limit} {r.unit}",
                      f"{r.segments} {r.encoding}" if r.segments else "-", str(row.recipients),
                      str(row.cost_segments) if row.kind == "sms" else "-")
    out.print(table)
    total = sum(row.cost_segments for row in plan.rows if row.kind == "sms")
    phones = sum(row.recipients for row in plan.rows if row.kind == "sms")
    out.print(f"SMS: {phones} recipient(s), {total} segment(s) in all")
    seen: set[tuple[str, str]] = set()
    for row in plan.rows:
        key = (row.kind, row.rendered.language)
        if key in seen:
            continue
        seen.add(key)
        out.rule(f"{row.kind} · {row.rendered.language}")
        out.print(row.rendered.text, markup=False)


def confirm_live(plan: Plan) -> bool:
    """Show what will go out, then make the officer type the template id."""
    show_preview(plan)
    banner("live")
    if not sys.stdin.isatty():
        err_console().print("a live fire needs a typed confirmation on a terminal, or --yes", style="bold red")
        return False
    answer = input(f"Type the template id ({plan.template.id}) to send this LIVE alert: ")
    return answer.strip() == plan.template.id


def cmd_fire(args: argparse.Namespace) -> int:
    if getattr(args, "at", None) or getattr(args, "every", None) or getattr(args, "until", None):
        from broadcaster.cli.schedule_cmd import schedule_fire

        return schedule_fire(args)
    if getattr(args, "queue", False) and args.mode == "dry-run":
        raise ConfigError("--queue: a dry-run is never left to workers; it runs here, on this machine",
                          where="--queue")
    with guarded_app(args) as app:
        return _fire(args, app)


@contextmanager
def guarded_app(args: argparse.Namespace) -> Iterator[App]:
    """The command's app; for a dry-run, inside the network guard, its store opened just before the guard
    closes the network (with PostgreSQL, the database is the one connection a dry-run keeps)."""
    app = load_app(args.config, args.db)
    if args.mode != "dry-run":
        yield app
        return
    _ = app.store
    with no_network():
        yield app


def _fire(args: argparse.Namespace, app: App) -> int:
    plan = plan_alert(
        app.config, app.catalogue, args.template, inputs_from(args, app), mode=args.mode, now=time.time(),
        areas=tuple(args.area), selection=args.channels, store=app.store,
    )
    if args.mode == "live" and not args.yes and not confirm_live(plan):
        err_console().print("not confirmed: nothing was sent.", style="bold red")
        return EXIT_INVALID
    if getattr(args, "queue", False):
        return queue_plan(app, plan, args.mode, as_json=args.json)
    return run_plan(app, plan, args.mode, as_json=args.json, show_log=getattr(args, "log", False))


def run_plan(app: App, plan: Plan, mode: str, *, as_json: bool, show_log: bool = False) -> int:
    """Commit and deliver a checked plan; print progress, then the result."""
    if not as_json:
        banner(mode)
        console().print(f"alert [bold]{plan.alert.id}[/] · {plan.template.id} · "
                        f"{len(plan.channels)} channel(s)")
    configs = plan.channels
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[note]}"), console=console(), transient=False)
    tasks: dict[str, Any] = {}
    done: Counter[tuple[str, str]] = Counter()

    def on_commit(created: int, skipped: int) -> None:
        counts = app.store.state_counts(plan.alert.id)
        for config in configs:
            total = sum(counts.get(config.id, {}).values())
            tasks[config.id] = progress.add_task(config.id, total=total, note="")
        if skipped and not as_json:
            console().print(f"{skipped} duplicate phone number(s) skipped: one SMS per phone")

    def on_progress(channel_id: str, state: str) -> None:
        done[(channel_id, state)] += 1
        if state in ("sent", "failed", "expired") and channel_id in tasks:
            progress.advance(tasks[channel_id])
        if state in ("failed", "unknown", "pending") and channel_id in tasks:
            note = ", ".join(f"{s} {n}" for (c, s), n in sorted(done.items()) if c == channel_id and s != "sent")
            progress.update(tasks[channel_id], note=note)

    action = {"Alert": "fire", "Update": "update", "Cancel": "cancel"}[plan.alert.msg_type]
    app.audit(action, {"alert_id": plan.alert.id, "template": plan.template.id, "mode": mode,
                       "references": plan.alert.references, "channels": list(plan.alert.channels)})
    show_progress = not as_json and sys.stdout.isatty()
    with Live(progress, console=console(), transient=False) if show_progress else nullcontext():
        run_mode(mode, lambda: deliver(app.store, configs, mode, plan=plan, progress=on_progress,
                                       on_commit=on_commit, status_callback=callback_url(app.config)))
    return report(app, plan.alert.id, mode, as_json=as_json, show_log=show_log)


def queue_plan(app: App, plan: Plan, mode: str, *, as_json: bool) -> int:
    """Commit only: workers on any node claim the deliveries (woken by NOTIFY on PostgreSQL)."""
    created, skipped = commit(app.store, plan)
    app.audit("fire", {"alert_id": plan.alert.id, "template": plan.template.id, "mode": mode,
                       "references": plan.alert.references, "channels": list(plan.alert.channels), "queued": True})
    workers = [n for n in app.store.nodes(time.time() - DEAD_AFTER_S)
               if n.role in ("worker", "serve") and n.stopped_at is None]
    if as_json:
        print_json({"alert_id": plan.alert.id, "mode": mode, "queued": created, "duplicates_skipped": skipped,
                    "workers": [n.id for n in workers]})
    else:
        banner(mode)
        console().print(f"alert [bold]{plan.alert.id}[/] queued: {created} deliveries for "
                        f"{len(workers)} worker node(s); follow it with `broadcaster log {plan.alert.id}`")
    if not workers:
        err_console().print("warning: no worker node is running: start `broadcaster worker` to deliver this alert",
                            style="bold red")
    return EXIT_OK


def report(app: App, alert_id: str, mode: str, *, as_json: bool, show_log: bool = False) -> int:
    deliveries = app.store.deliveries(alert_id)
    ok = all(d.state == "sent" for d in deliveries)
    if as_json:
        print_json({
            "alert_id": alert_id,
            "mode": mode,
            "deliveries": [
                {"channel": d.channel_id, "recipient": d.recipient, "language": d.language, "state": d.state,
                 "attempts": d.attempts, "provider_id": d.provider_id}
                for d in deliveries
            ],
        })
    else:
        from broadcaster.cli.log_cmd import show_attempts, show_summary

        show_summary(app, alert_id)
        if show_log:
            show_attempts(app, alert_id, limit=60)
        if ok:
            console().print("dry-run: every delivery simulated; nothing left this machine" if mode == "dry-run"
                            else "all deliveries sent")
        else:
            console().print(f"[bold red]some deliveries did not go out[/]: see `broadcaster log {alert_id}`")
    return EXIT_OK if ok else EXIT_FAILED

